"""Versioned event models: every message on the bus is one of these."""

from loom_common.events.base import Event
from loom_common.events.documents import DocumentIngestRequested, DocumentProgress, DocumentStatus
from loom_common.events.runs import (
    AnnotationReply,
    HumanInputAnswer,
    RunCancelRequested,
    RunEvent,
    RunEventAdapter,
    RunEventBatch,
    RunEventUnreadable,
    RunFinished,
    RunRequested,
    read_run_event,
    read_run_events,
)
from loom_common.events.system import DeadLetter

__all__ = [
    "AnnotationReply",
    "DeadLetter",
    "DocumentIngestRequested",
    "DocumentProgress",
    "DocumentStatus",
    "Event",
    "HumanInputAnswer",
    "RunCancelRequested",
    "RunEvent",
    "RunEventAdapter",
    "RunEventBatch",
    "RunEventUnreadable",
    "RunFinished",
    "RunRequested",
    "read_run_event",
    "read_run_events",
]
