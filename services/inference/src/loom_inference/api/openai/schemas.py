"""Wire models of the OpenAI API subset Loom serves (unknown fields are ignored)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionCall(_Wire):
    name: str
    arguments: str = "{}"


class ToolCall(_Wire):
    id: str = ""
    type: str = "function"
    function: FunctionCall


class ImageUrl(_Wire):
    url: str = ""
    detail: str | None = None  # OpenAI's resolution hint; llama.cpp's projector has one size


class ContentPart(_Wire):
    type: str
    text: str | None = None
    image_url: ImageUrl | None = None


class Message(_Wire):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class FunctionDef(_Wire):
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None


class Tool(_Wire):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedToolChoice(_Wire):
    type: str = "function"
    function: dict[str, str]


class JsonSchemaFormat(_Wire):
    name: str = "response"
    schema_: dict[str, Any] | None = None

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def __init__(self, **data):
        if "schema" in data:
            data["schema_"] = data.pop("schema")
        super().__init__(**data)


class ResponseFormat(_Wire):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Wire):
    include_usage: bool = False


class _Sampling(_Wire):
    model: str
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    min_p: float | None = None            # beyond OpenAI's API, as vLLM's server takes it
    top_k: int | None = None              # likewise
    logprobs: bool | int | None = None   # chat: a bool (+ top_logprobs); completions: N alternatives
    top_logprobs: int | None = None


class ChatCompletionRequest(_Sampling):
    messages: list[Message]
    tools: list[Tool] | None = None
    tool_choice: str | NamedToolChoice | None = None
    response_format: ResponseFormat | None = None
    max_completion_tokens: int | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    suffix: str | None = None


class EmbeddingRequest(_Wire):
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
