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
