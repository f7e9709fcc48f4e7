"""Wire shapes the gateway answers with that FastAPI cannot see from the handlers (they return
dicts built in the domain): documented in the OpenAPI schema by openapi.py, in Dify's terms."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Error(BaseModel):
    """Every error, as Dify sends it."""

    code: str = Field(description="Machine-readable, e.g. invalid_param, not_found, too_many_requests")
    message: str
    status: int = Field(description="The HTTP status again")
    field: str | None = Field(None, description="The parameter at fault (400 only)")


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class MessageMetadata(BaseModel):
    usage: Usage | dict[str, Any] = Field(default_factory=dict)
    retriever_resources: list[dict[str, Any]] = Field(default_factory=list)


class ChatMessage(BaseModel):
    """The blocking answer of /v1/chat-messages and /v1/completion-messages."""

    event: Literal["message"] = "message"
    task_id: str = Field(description="The run id: stop it with POST .../{task_id}/stop")
    id: str
    message_id: str
    conversation_id: str | None = Field(None, description="Chat apps: pass it back to continue")
    mode: str = Field(description="chat, advanced-chat, agent-chat or completion")
    answer: str
    metadata: MessageMetadata
    created_at: int


class WorkflowRunData(BaseModel):
    id: str
    workflow_id: str
    status: Literal["running", "succeeded", "failed", "stopped", "paused"]
    outputs: dict[str, Any]
    error: str | None = None
    elapsed_time: float | None = None
    total_tokens: int
    total_steps: int
    created_at: int
    finished_at: int | None = None


class WorkflowRun(BaseModel):
    """The blocking answer of /v1/workflows/run."""

    workflow_run_id: str
    task_id: str
    data: WorkflowRunData
