"""Run events: the request that starts a run, and the ordered stream a run emits.

`RunRequested` goes on the `runs.requested` work queue (gateway -> orchestrator).
`RunEvent` is what the orchestrator publishes on `run.<run_id>.events`, one per step, with a
`seq` that grows by one, so a client resumes from the last `seq` it saw. The names follow
Dify's SSE events so the gateway can map them one to one.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from loom_common.events.base import Event

AppMode = Literal["chat", "chatflow", "workflow", "agent", "completion"]
# Where a run comes from (Dify's names): an app key's call, the console's run of the draft, or
# the console's run of one node of it (a one-node graph), a schedule's tick or a webhook call (triggers).
InvokeFrom = Literal["service-api", "debugger", "single-node", "schedule", "webhook"]
ResponseMode = Literal["streaming", "blocking"]


class AnnotationReply(BaseModel):
    """An annotated answer the gateway matched to a chat query (Dify's annotation reply): the run
    streams it as the answer and calls no model."""

    model_config = ConfigDict(extra="forbid")

    id: str                      # the annotation's id (the gateway's app_annotations row)
    answer: str
    score: float                 # cosine similarity of the query to the annotated question


class HumanInputAnswer(BaseModel):
    """The answer to a paused run's human-input form (or its timeout): a run request carrying
    one resumes the paused run instead of starting it (worker.py). The gateway checked the
    values against the form; the orchestrator takes the first answer of a form, or its timeout."""

    model_config = ConfigDict(extra="forbid")

    form_id: str                 # the node execution's id (`human_input_required`'s form_id)
    node_key: str                # the node's key in the run (node id, qualified inside iterations)
    values: dict[str, JsonValue] = Field(default_factory=dict)
    action: str = "source"       # the branch taken: a user action's id, `source`, or `timeout`
    timed_out: bool = False
    answered_by: str = ""        # who answered: "service-api:<user>", "console:<account id>", "timer"


class RunRequested(Event):
    type: Literal["run.requested"] = "run.requested"
    version: Literal[1] = 1

    run_id: str
    app_id: str
    app_mode: AppMode = "workflow"
    # The app's graph (DSL) as published at request time: the orchestrator runs exactly this
    # version even if the app is edited meanwhile, and never reads the gateway's tables.
    graph: dict[str, JsonValue] = Field(default_factory=dict)
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    query: str | None = None
    conversation_id: str | None = None
    # The message the gateway stored for this turn (chat modes): the one id the run's message
    # events carry, so feedback and suggestions find it. None: the run id stands for it.
    message_id: str | None = None
    user: str | None = None
    files: list[dict[str, JsonValue]] = Field(default_factory=list)
    response_mode: ResponseMode = "streaming"
    invoke_from: InvokeFrom = "service-api"
    # Conversation variables a client set through the API since the conversation's last turn
    # (Dify's PUT .../variables/{id}): they override the values the orchestrator kept.
    conversation_variables: dict[str, JsonValue] | None = None
    # Set by the gateway when an annotation answers the query: no graph runs (workflow.py).
    annotation_reply: AnnotationReply | None = None
    # Set when this request resumes a paused run with a human-input answer (the run's other
    # fields are the orchestrator's own record of its first request, not these).
    resume: HumanInputAnswer | None = None


class RunCancelRequested(Event):
    type: Literal["run.cancel_requested"] = "run.cancel_requested"
    version: Literal[1] = 1

    run_id: str
    reason: str = "stopped by user"


RunEventType = Literal[
    "workflow_started",
    "node_started",
    "text_chunk",
    "message",
    "agent_thought",
    "node_finished",
    "workflow_finished",
    "message_end",
    "error",
    # Added by the orchestrator (Dify's SSE names too): retries, iteration and loop progress.
    "node_retry",
    "iteration_started",
    "iteration_next",
    "iteration_completed",
    "loop_started",
    "loop_next",
    "loop_completed",
    # A human-input node waits for an answer: its form, the run paused (no worker holds it),
    # and the run taken up again after an answer or a timeout.
    "human_input_required",
    "workflow_paused",
    "workflow_resumed",
]


class RunEventData(BaseModel):
    """The payload of one run event; fields follow Dify's SSE `data` objects."""

    model_config = ConfigDict(extra="allow")


class RunEvent(Event):
    type: Literal["run.event"] = "run.event"
    version: Literal[1] = 1

    run_id: str
    seq: int = Field(ge=1, description="1, 2, 3, ... per run; the SSE event id")
    event: RunEventType
    task_id: str | None = None
    node_id: str | None = None
    data: dict[str, JsonValue] = Field(default_factory=dict)


RunEventAdapter: TypeAdapter[RunEvent] = TypeAdapter(Annotated[RunEvent, Field(discriminator="type")])
