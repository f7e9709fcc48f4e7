"""The engine's vocabulary: requests, sampling parameters, output deltas and errors.

Error tree (every transport maps these to its own status codes):

    InferenceError
    ├── ModelNotFound        unknown model name                 -> NOT_FOUND / 404
    ├── InvalidRequest       bad field (names it in `field`)    -> INVALID_ARGUMENT / 400
    │   └── ContextTooLong   prompt + max_tokens > context      -> INVALID_ARGUMENT / 400
    ├── Overloaded           queue full or concurrency limit    -> RESOURCE_EXHAUSTED / 429
    └── BackendError         the model backend failed           -> UNAVAILABLE / 502
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from loom_common import errors


class InferenceError(errors.LoomError):
    """Base of every error the engine and the router raise on purpose. Each kind is also a leaf
    of loom_common's error tree (listed first, so its `code` and `grpc_status` win): the gRPC
    servicer answers the status its class declares (loom_common.grpc_errors)."""

    code, grpc_status = "inference_error", "INTERNAL"


class ModelNotFound(errors.NotFound, InferenceError):
    def __init__(self, model: str) -> None:
        super().__init__(f"model {model!r} not found")
        self.model = model


class InvalidRequest(errors.InvalidArgument, InferenceError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class ContextTooLong(InvalidRequest):
    def __init__(self, needed: int, limit: int, field: str = "prompt") -> None:
        super().__init__(f"needs {needed} tokens of context, the model has {limit}", field)
        self.needed, self.limit = needed, limit


class Overloaded(errors.ResourceExhausted, InferenceError):
    """Too many requests: the caller may retry later or use a fallback model."""


class BackendError(errors.Unavailable, InferenceError):
    """A backend failed (remote endpoint down, model failed to load)."""


class FinishReason(enum.StrEnum):
    STOP = "stop"            # end-of-generation token or a stop string
    LENGTH = "length"        # max_tokens or the context limit
    TOOL_CALLS = "tool_calls"
    ABORTED = "aborted"      # the client went away or cancelled
    ERROR = "error"


@dataclass
class SamplingParams:
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64         # tokens the penalties look back over (0: off, -1: the whole context)
    presence_penalty: float = 0.0   # subtracted once from every token already generated
    frequency_penalty: float = 0.0  # subtracted per occurrence
    min_p: float = 0.0              # drop tokens below min_p x the best token's probability
    mirostat: int = 0               # 1 or 2: Mirostat (perplexity control) instead of top-k/top-p
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int | None = None
    max_tokens: int | None = None   # None: until the context or the engine's default cap
    stop: list[str] = field(default_factory=list)
    # Log-probabilities of the sampled tokens (of the model's distribution, before sampling's
    # penalties and temperature): None = off, N = also the N most likely tokens (<= 20).
    logprobs: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    @property
    def penalized(self) -> bool:
        return self.repeat_last_n != 0 and (self.repeat_penalty not in (0.0, 1.0) or bool(self.presence_penalty)
                                            or bool(self.frequency_penalty))


@dataclass
class ToolSpec:
    name: str
    description: str = ""
    parameters: dict | None = None   # a JSON schema


@dataclass
class ToolCall:
    id: str
    name: str
    arguments_json: str


@dataclass
class Image:
    """One image of a message, decoded (api/images.py); `field` names where the request sent
    it, so a model that cannot read it is refused naming that field."""

    data: bytes
    field: str
    mime: str = "image/png"


@dataclass
class ChatMessage:
    role: str
    content: str = ""
    name: str = ""
    tool_call_id: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)  # in the order the request sent them


@dataclass
class GenerateRequest:
    """What a caller asks for: a raw prompt or chat messages, for one named model."""

    model: str
    prompt: str = ""
    messages: list[ChatMessage] = field(default_factory=list)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    json_schema: str = ""        # constrain the output to this schema ("" = free text)
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str = ""        # "", auto, none, required or a tool name
    request_id: str = ""
    raw: bool = False            # prompt is sent as is, without a template
    tenant_id: str = ""          # gRPC callers' workspace: its registered remote models may serve it
    # Seconds the model stays loaded after this request (None: forever; "default": the
    # engine's default; router/lifecycle.py). Ollama's keep_alive.
    keep_alive: float | str | None = "default"
    num_ctx: int | None = None   # this request's context window (Ollama's options.num_ctx)
    suffix: str = ""             # fill-in-the-middle: the text after the gap (`prompt` is before it)
    think: bool | None = None    # a reasoning model's thinking: apart (None/True) or dropped (False)

    @property
    def images(self) -> list[Image]:
        return [img for m in self.messages for img in m.images]


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Timings:
    """Milliseconds, measured inside the engine (see the proto for each field's meaning)."""

    queue_ms: float = 0.0
    prefill_ms: float = 0.0
    ttft_ms: float = 0.0
    decode_ms: float = 0.0
    total_ms: float = 0.0
    load_ms: float = 0.0


MAX_TOP_LOGPROBS = 20


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int] = field(default_factory=list)
    top: list[TokenLogprob] = field(default_factory=list)  # the most likely tokens at this step


@dataclass
class Delta:
    """One piece of a stream. The last one has `finish_reason`, `usage` and `timings` set."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    timings: Timings | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    model: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)  # one per token this delta carries
    thinking: str = ""           # a reasoning model's thinking (prompting/thinking.py), apart from text

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class EmbedResult:
    model: str
    dimension: int
    vectors: list[list[float]]
    prompt_tokens: int = 0


@dataclass
class ModelInfo:
    name: str
    backend: str
    kind: str = "chat"           # chat | completion | embedding
    context_length: int = 0
    embedding_dimension: int = 0
    size_bytes: int = 0
    family: str = ""
    quantization: str = ""
    parameter_size: str = ""
    loaded: bool = False
    path: str = ""
    digest: str = ""
    template: str = ""
    memory_bytes: int = 0        # while loaded: weights + KV cache (Ollama's ps `size`)
    thinking: bool = False       # a reasoning model (writes <think>...</think>); known once loaded
    vision: bool = False         # reads images (a llama.cpp model with its projector, mmproj)
    projector: str = ""          # the projector's GGUF (Ollama's image.projector layer)
    # A Modelfile's profile (modelfile.py): applied to every request of this model.
    system: str = ""
    parameters: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    license: list = field(default_factory=list)
    parent: str = ""
