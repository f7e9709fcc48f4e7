"""Run events: the request that starts a run, and the ordered stream a run emits.

`RunRequested` goes on the `runs.requested` work queue (gateway -> orchestrator).
`RunEvent` is what the orchestrator publishes on `run.<run_id>.events`, one per step, with a
`seq` that grows by one, so a client resumes from the last `seq` it saw. `RunFinished` goes on
`runs.finished` once a run ends (or pauses): the gateway's durable consumer records it.

The run-event contract (schema version 2, `RunEvent.version`):

    RunEvent (envelope: run_id, seq, task_id, node_id, version=2)
      .data: one of the payload models below, told apart by `data.type` (Dify's event names:
             workflow_started, node_started, text_chunk, message, ..., message_end, error)

Each payload model types every field Dify's SSE shows for that event; the gateway's `api/` layer
alone turns them into Dify's wire objects. Every field has a default, so a producer states what
it knows and a consumer reads fields, never `.get()`. Adding a field (with a default) keeps the
version; renaming or retyping one is a new version. Version 1 (the untyped `event` + `data`
dict) is still read: `RunEvent` lifts a v1 event whose data fits its payload model, and refuses
one that does not with `RunEventUnreadable` (the stream keeps events for 7 days).

A bus message on `run.<run_id>.events` holds one event (a `RunEvent`, version 2) or several
consecutive ones (a `RunEventBatch`, version 3: the orchestrator batches what a run emits within
a few milliseconds, and merges a node's consecutive text deltas into one multi-token event).
Read a message with `read_run_events` (a list, in seq order); a reader of version 2 only
refuses a batch clearly ("version 3 is unknown here"), so gateways are deployed before
orchestrators.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

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


# ---- the run's events (schema version 2) --------------------------------------------------

RUN_EVENT_SCHEMA = 2
RUN_EVENT_BATCH_SCHEMA = 3  # a bus message holding several version-2 events (RunEventBatch)


class RunEventUnreadable(ValueError):
    """A stored run event this code cannot read: an unknown schema version, or a version-1
    event whose data does not fit its payload model. Says which event and why."""


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _NodeRef(_Payload):
    """What every node-level event says of its node (Dify's `data` of node_* events)."""

    id: str = ""                  # the node execution's id (one per node key per run)
    node_id: str = ""
    node_type: str = ""
    title: str = ""
    index: int = 0
    iteration_id: str | None = None   # the container the node runs in, if any
    loop_id: str | None = None


class WorkflowStarted(_Payload):
    type: Literal["workflow_started"] = "workflow_started"
    id: str = ""
    workflow_run_id: str = ""
    app_id: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    created_at: int = 0
    conversation_id: str | None = None
    message_id: str | None = None


class WorkflowResumed(_Payload):
    type: Literal["workflow_resumed"] = "workflow_resumed"
    id: str = ""
    workflow_run_id: str = ""
    created_at: int = 0


class NodeStarted(_NodeRef):
    type: Literal["node_started"] = "node_started"
    inputs: dict[str, Any] = Field(default_factory=dict)
    created_at: int = 0


class ExecutionMetadata(_Payload):
    total_tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1             # tries the node took, the first included (retries + 1)


class NodeFinished(_NodeRef):
    type: Literal["node_finished"] = "node_finished"
    inputs: dict[str, Any] | None = None
    process_data: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    status: str = "succeeded"     # succeeded | failed | exception
    error: str | None = None
    elapsed_time: float = 0.0
    execution_metadata: ExecutionMetadata = Field(default_factory=ExecutionMetadata)
    created_at: int = 0
    finished_at: int = 0


class NodeRetry(_NodeRef):
    type: Literal["node_retry"] = "node_retry"
    error: str = ""
    retry_index: int = 1
    created_at: int = 0


class TextChunk(_Payload):
    type: Literal["text_chunk"] = "text_chunk"
    text: str = ""
    from_variable_selector: list[str] = Field(default_factory=list)


class Message(_Payload):
    type: Literal["message"] = "message"
    id: str | None = None
    message_id: str | None = None
    conversation_id: str | None = None
    answer: str = ""
    created_at: int = 0


class AgentThought(_Payload):
    type: Literal["agent_thought"] = "agent_thought"
    id: str = ""                  # the round's own id
    message_id: str | None = None
    conversation_id: str | None = None
    position: int = 0
    thought: str = ""
    tool: str = ""
    tool_input: str = ""
    observation: str = ""
    created_at: int = 0


class WorkflowFinished(_Payload):
    type: Literal["workflow_finished"] = "workflow_finished"
    id: str = ""
    workflow_run_id: str = ""
    status: str = "succeeded"     # succeeded | partial-succeeded | failed | stopped
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    elapsed_time: float | None = None
    total_tokens: int = 0
    total_steps: int = 0
    created_at: int = 0
    finished_at: int = 0


class Usage(_Payload):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class MessageMetadata(_Payload):
    """message_end's `metadata` (Dify's): usage, citations, the annotation that answered."""

    usage: Usage = Field(default_factory=Usage)
    retriever_resources: list[dict[str, Any]] = Field(default_factory=list)
    annotation_reply: dict[str, Any] | None = None


class MessageEnd(_Payload):
    type: Literal["message_end"] = "message_end"
    id: str | None = None
    message_id: str | None = None
    conversation_id: str | None = None
    metadata: MessageMetadata = Field(default_factory=MessageMetadata)
    # The conversation's variables after this turn, for the gateway's record (not shown to clients).
    conversation_variables: dict[str, Any] | None = None


class RunError(_Payload):
    """Dify's in-stream `error`: the run failed (followed by workflow_finished, status failed)."""

    type: Literal["error"] = "error"
    status: int = 400             # the HTTP status Dify's error event names
    code: str = "workflow_failed"
    message: str = "run failed"
    message_id: str | None = None
    conversation_id: str | None = None


class _ContainerStarted(_Payload):
    """An iteration or loop node began (Dify sends the same fields for both)."""

    node_id: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    created_at: int = 0


class _ContainerNext(_Payload):
    node_id: str = ""
    index: int = 0
    created_at: int = 0


class _ContainerCompleted(_Payload):
    node_id: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)
    steps: int = 0
    created_at: int = 0


class IterationStarted(_ContainerStarted):
    type: Literal["iteration_started"] = "iteration_started"


class IterationNext(_ContainerNext):
    type: Literal["iteration_next"] = "iteration_next"


class IterationCompleted(_ContainerCompleted):
    type: Literal["iteration_completed"] = "iteration_completed"


class LoopStarted(_ContainerStarted):
    type: Literal["loop_started"] = "loop_started"


class LoopNext(_ContainerNext):
    type: Literal["loop_next"] = "loop_next"


class LoopCompleted(_ContainerCompleted):
    type: Literal["loop_completed"] = "loop_completed"


class HumanInputRequired(_Payload):
    """A human-input node's form, waiting for an answer (`form_id` answers it)."""

    type: Literal["human_input_required"] = "human_input_required"
    form_id: str = ""
    node_id: str = ""
    node_key: str = ""
    node_title: str = ""
    form_content: str = ""
    fields: list[dict[str, Any]] = Field(default_factory=list)
    user_actions: list[dict[str, Any]] = Field(default_factory=list)
    answerable_by: list[str] = Field(default_factory=list)
    expiration_time: int | None = None


class WorkflowPaused(_Payload):
    type: Literal["workflow_paused"] = "workflow_paused"
    id: str = ""
    workflow_run_id: str = ""
    status: Literal["paused"] = "paused"
    form_ids: list[str] = Field(default_factory=list)
    total_steps: int = 0
    total_tokens: int = 0
    created_at: int = 0
    paused_at: int = 0


RunEventData = Annotated[
    WorkflowStarted | WorkflowResumed | NodeStarted | NodeFinished | NodeRetry | TextChunk | Message | AgentThought
    | WorkflowFinished | MessageEnd | RunError | IterationStarted | IterationNext | IterationCompleted
    | LoopStarted | LoopNext | LoopCompleted | HumanInputRequired | WorkflowPaused,
    Field(discriminator="type"),
]
RunEventType = Literal[
    "workflow_started", "workflow_resumed", "node_started", "node_finished", "node_retry", "text_chunk", "message",
    "agent_thought", "workflow_finished", "message_end", "error", "iteration_started", "iteration_next",
    "iteration_completed", "loop_started", "loop_next", "loop_completed", "human_input_required", "workflow_paused",
]
RunEventDataAdapter: TypeAdapter[Any] = TypeAdapter(RunEventData)


def run_event_data(event: str, data: dict[str, Any]) -> Any:
    """The typed payload of event `event` from its fields (raises ValidationError if they do
    not fit: an unknown event name, a field the model lacks, a wrong type)."""
    return RunEventDataAdapter.validate_python({**data, "type": event})


class RunEvent(Event):
    """One event of a run's ordered stream (schema version 2: `data` is typed)."""

    type: Literal["run.event"] = "run.event"
    version: Literal[2] = RUN_EVENT_SCHEMA

    run_id: str
    seq: int = Field(ge=1, description="1, 2, 3, ... per run; the SSE event id")
    task_id: str | None = None
    node_id: str | None = None
    data: RunEventData

    @property
    def event(self) -> RunEventType:
        """The event's name (Dify's SSE `event`): its payload's type."""
        return self.data.type

    @model_validator(mode="before")
    @classmethod
    def _lift(cls, values: Any) -> Any:
        """Accept `event=<name>, data=<dict>` (version 1's shape, and a convenient way to build
        one): the dict becomes the typed payload named `event`."""
        if not isinstance(values, dict) or ("event" not in values and values.get("version", 2) == 2):
            return values
        version = values.get("version", 2)
        if version not in (1, 2):
            raise RunEventUnreadable(f"run event schema version {version!r} is unknown here (this code reads 1 "
                                     f"and {RUN_EVENT_SCHEMA})")
        values = dict(values)
        name = values.pop("event", None)
        data = values.get("data") or {}
        if isinstance(data, dict) and name is not None:
            data = {**data, "type": name}
        values["data"], values["version"] = data, RUN_EVENT_SCHEMA
        return values


def read_run_event(raw: bytes | str) -> RunEvent:
    """A stored run event, of either version; `RunEventUnreadable` (naming the event's seq and
    what does not fit) for one this code cannot read, never a half-read event."""
    try:
        return RunEvent.model_validate_json(raw)
    except ValidationError as exc:
        raise RunEventUnreadable(f"unreadable run event ({_describe(raw)}): "
                                 f"{exc.errors(include_url=False)[0]['msg']} at "
                                 f"{'.'.join(map(str, exc.errors()[0]['loc'])) or 'top level'}") from None


def _describe(raw: bytes | str) -> str:
    try:
        obj = json.loads(raw)
        data = obj.get("data")
        name = obj.get("event") or (data.get("type") if isinstance(data, dict) else None)
        if isinstance(obj.get("events"), list):  # a batch: the seqs it holds
            seqs = [e.get("seq") for e in obj["events"] if isinstance(e, dict)] or [None]
            return f"version {obj.get('version')}, a batch of seqs {seqs[0]} to {seqs[-1]}"
        return f"version {obj.get('version')}, seq {obj.get('seq')}, event {name}"
    except (ValueError, AttributeError):
        return "not a JSON object"


RunEventAdapter: TypeAdapter[RunEvent] = TypeAdapter(RunEvent)


class RunEventBatch(Event):
    """Consecutive events of one run in one bus message (schema version 3): fewer messages for
    NATS to store and ack, for the orchestrator to write and for the gateway to read. Each event
    keeps its own seq (a client resumes from any of them); the batch's `event_id` is the
    message's Nats-Msg-Id, so a batch published again is stored once."""

    type: Literal["run.event"] = "run.event"
    version: Literal[3] = RUN_EVENT_BATCH_SCHEMA

    run_id: str
    events: list[RunEvent] = Field(min_length=1)


def _message_kind(value: Any) -> str:
    version = value.get("version") if isinstance(value, dict) else getattr(value, "version", None)
    return "batch" if version == RUN_EVENT_BATCH_SCHEMA else "one"


_RunEventMessage: TypeAdapter[Any] = TypeAdapter(
    Annotated[Annotated[RunEvent, Tag("one")] | Annotated[RunEventBatch, Tag("batch")], Discriminator(_message_kind)])


def read_run_events(raw: bytes | str) -> list[RunEvent]:
    """The events of one bus message on a run's subject (one, or a batch's, in seq order), of any
    version this code reads; `RunEventUnreadable` (naming the message and what does not fit) for
    one it cannot read, never a half-read message."""
    try:
        message = _RunEventMessage.validate_json(raw)
    except ValidationError as exc:
        raise RunEventUnreadable(f"unreadable run event ({_describe(raw)}): "
                                 f"{exc.errors(include_url=False)[0]['msg']} at "
                                 f"{'.'.join(map(str, exc.errors()[0]['loc'])) or 'top level'}") from None
    return message.events if isinstance(message, RunEventBatch) else [message]

# ---- a run's outcome -----------------------------------------------------------------------

RunStatus = Literal["succeeded", "partial-succeeded", "failed", "stopped", "paused"]


class RunFinished(Event):
    """A run's end (or its pause on human input), on `runs.finished`: all the gateway records
    of it, whether or not a client watched. Published by the orchestrator after the run's
    events, with `event_id` `<run_id>.<status>.<last_seq>` so a republish is stored once."""

    type: Literal["run.finished"] = "run.finished"
    version: Literal[1] = 1

    run_id: str
    status: RunStatus
    answer: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)   # as workflow_finished shows them
    error: str | None = None
    error_code: str | None = None
    usage: Usage = Field(default_factory=Usage)
    total_steps: int = 0
    elapsed_time: float = 0.0
    metadata: MessageMetadata | None = None                 # a chat's message_end metadata
    conversation_variables: dict[str, Any] | None = None
    agent_thoughts: list[AgentThought] = Field(default_factory=list)
    first_text_at: datetime | None = None                   # when the first answer text was sent
    form_ids: list[str] = Field(default_factory=list)       # a paused run's open forms
    last_seq: int = 0                                       # the seq of the run's last event
