"""Wire models of the Ollama API (the fields Ollama's clients send; unknown ones are ignored)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Options(_Wire):
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    min_p: float | None = None
    mirostat: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    seed: int | None = None
    num_predict: int | None = None
    stop: list[str] | None = None
    num_ctx: int | None = None


class ToolCallFunction(_Wire):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ToolCall(_Wire):
    function: ToolCallFunction


class Message(_Wire):
    role: str
    content: str | None = ""
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    images: list[str] | None = None


class ToolFunction(_Wire):
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None


class Tool(_Wire):
    type: str = "function"
    function: ToolFunction


class GenerateRequest(_Wire):
    model: str
    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    images: list[str] | None = None
    raw: bool = False
    stream: bool = True
    format: str | dict[str, Any] | None = None
    options: Options | None = None
    keep_alive: str | float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    think: bool | None = None


class ChatRequest(_Wire):
    model: str
    messages: list[Message] = []
    tools: list[Tool] | None = None
    stream: bool = True
    format: str | dict[str, Any] | None = None
    options: Options | None = None
    keep_alive: str | float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    think: bool | None = None


class EmbedRequest(_Wire):
    model: str
    input: str | list[str]
    truncate: bool | None = None


class EmbeddingsRequest(_Wire):
    model: str
    prompt: str = ""


class ModelRequest(_Wire):
    """show / delete / pull: newer clients send `model`, older ones `name`."""

    model: str | None = None
    name: str | None = None
    stream: bool = True
    insecure: bool = False

    @property
    def target(self) -> str:
        return self.model or self.name or ""


class CreateRequest(_Wire):
    """/api/create: the ollama client's structured fields, or (older clients) a Modelfile's text."""

    model: str | None = Field(None, max_length=300)
    name: str | None = Field(None, max_length=300)
    from_: str | None = Field(None, alias="from", max_length=4096)
    files: dict[str, str] | None = Field(None, max_length=16)
    adapters: dict[str, str] | None = None
    template: str | None = Field(None, max_length=1_000_000)
    license: str | list[str] | None = None
    system: str | None = Field(None, max_length=1_000_000)
    parameters: dict[str, Any] | None = Field(None, max_length=64)
    messages: list[dict[str, Any]] | None = Field(None, max_length=256)
    modelfile: str | None = Field(None, max_length=1_000_000)
    quantize: str | None = None
    stream: bool = True

    @property
    def target(self) -> str:
        return self.model or self.name or ""


class CopyRequest(_Wire):
    source: str = Field(max_length=300)
    destination: str = Field(max_length=300)
