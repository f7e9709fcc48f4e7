"""Document ingestion events: the work item, and its progress as it moves through states."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from loom_common.events.base import Event


class DocumentStatus(StrEnum):
    """Ordered as a document moves; `completed`, `error` and `disabled` end the pipeline."""

    WAITING = "waiting"
    PARSING = "parsing"
    SPLITTING = "splitting"
    INDEXING = "indexing"
    COMPLETED = "completed"
    ERROR = "error"
    PAUSED = "paused"


class DocumentIngestRequested(Event):
    type: Literal["document.ingest_requested"] = "document.ingest_requested"
    version: Literal[1] = 1

    dataset_id: str
    document_id: str
    # Bumped when a document is edited and re-indexed, so a stale work item is skipped.
    revision: int = 1


class DocumentProgress(Event):
    type: Literal["document.progress"] = "document.progress"
    version: Literal[1] = 1

    dataset_id: str
    document_id: str
    status: DocumentStatus
    progress: float = Field(0.0, ge=0.0, le=1.0)
    segments_done: int = 0
    segments_total: int = 0
    error: str | None = None
