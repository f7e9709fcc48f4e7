"""The engine's seams: what a run needs from the outside world, as protocols with plain data.

    ModelClient    inference Generate (token stream; cancelling the iterator cancels upstream)
    Retriever      rag Retrieve
    ToolRunner     tools service Invoke / ListTools (code, http-request, tool, agent tools)
    DocumentReader a run's uploaded file -> its text (shared file store + bounded parser), or its bytes
    Journal        durable node records of a run (what makes a redelivered run resume)
    EventSink      ordered run events

Errors raised by implementations: `loom_common.errors.RetryableError` (try again) or
`PermanentError` (refused: bad arguments, unknown tool); `ToolFailed` carries the tool's code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from loom_common.errors import PermanentError


@dataclass
class ImagePart:
    """An image a message shows the model (a run's uploaded file; `name` is the file's, for errors)."""

    data: bytes
    mime_type: str = ""
    name: str = ""


@dataclass
class ChatMessage:
    role: str  # system | user | assistant | tool
    content: str = ""
    name: str = ""
    tool_call_id: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    images: list[ImagePart] = field(default_factory=list)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass
class ToolSchema:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass
class ModelRequest:
    model: str
    messages: list[ChatMessage]
    params: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, max_tokens, stop, seed...
    json_schema: dict[str, Any] | None = None
    tools: list[ToolSchema] = field(default_factory=list)
    tool_choice: str = ""
    request_id: str = ""
    tenant_id: str = ""
    run_id: str = ""


@dataclass
class ModelChunk:
    text: str = ""
    finish_reason: str = ""  # set on the last chunk: stop | length | tool_calls | aborted | error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    model: str = ""


class ModelClient(Protocol):
    def generate(self, request: ModelRequest) -> AsyncIterator[ModelChunk]: ...


@dataclass
class RetrievalQuery:
    tenant_id: str
    dataset_ids: list[str]
    query: str
    top_k: int = 4
    method: str = "default"  # semantic_search | full_text_search | hybrid_search | default
    score_threshold: float | None = None
    rerank: bool = False
    vector_weight: float = 0.0
    keyword_weight: float = 0.0
    # Metadata filters: (key, rag operator, value) triples, all ("and") or any ("or") of them.
    filters: list[tuple[str, str, Any]] = field(default_factory=list)
    filter_logic: str = "and"


class Retriever(Protocol):
    async def retrieve(self, query: RetrievalQuery, timeout_s: float) -> list[dict[str, Any]]: ...


class ToolFailed(PermanentError):
    """The tool ran (or was refused) and reported an error; `code` is the tools service's."""


class ToolRunner(Protocol):
    async def invoke(self, tool: str, arguments: dict[str, Any], *, tenant_id: str, run_id: str,
                     node_id: str, timeout_s: float) -> Any: ...

    async def list_tools(self, tenant_id: str, timeout_s: float) -> list[ToolSchema]: ...


@dataclass
class DocumentText:
    text: str
    pages: int


class DocumentReader(Protocol):
    async def read_text(self, tenant_id: str, file: dict[str, Any]) -> DocumentText:
        """The text of one of the run's files (a `sys.files` / file input entry); PermanentError
        naming the file when it is not an uploaded file, is missing or cannot be read."""

    async def read_bytes(self, tenant_id: str, file: dict[str, Any], max_bytes: int) -> bytes:
        """The raw bytes of one of the run's files (an image for a model); PermanentError naming
        the file as for `read_text`, or when it is larger than `max_bytes`."""


@dataclass
class NodeRecord:
    """A node execution as the journal keeps it (`key` is unique in the run, scope-qualified)."""

    key: str
    node_id: str
    node_type: str
    status: str  # running | succeeded | failed | exception | stopped
    starts: int = 1  # times it was started (a resumed in-flight node is started again)
    inputs: dict[str, Any] = field(default_factory=dict)
    process_data: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    edge_handle: str = "source"
    writes: list[list[Any]] = field(default_factory=list)  # [[selector, value], ...] applied to the pool
    error: str | None = None
    elapsed_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    index: int = 0  # order of start within the run
    version: str | None = None  # the node's `version` that ran it (None: journaled before versions were kept)
    # What the node did to the run (NodeResult's fields of the same names), replayed on resume:
    answer: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    run_outputs: dict[str, Any] | None = None
    loop_end: bool = False


class Journal(Protocol):
    async def load(self, run_id: str) -> dict[str, NodeRecord]: ...

    async def started(self, run_id: str, record: NodeRecord) -> int:
        """Durably note the node as running; returns how many times it has been started."""

    async def finished(self, run_id: str, record: NodeRecord) -> None: ...

    async def finished_many(self, run_id: str, records: list[NodeRecord]) -> None:
        """`finished` for several records at once (one round trip)."""


class EventSink(Protocol):
    def emit(self, event: str, data: dict[str, Any], node_id: str | None = None) -> None:
        """Queue one event; the sink assigns the next seq and publishes in order."""
