"""Run intake: record a requested run durably, exactly once, and announce it.

This is the first step of every run: the message on `runs.requested` is acked only after
this returns, so a worker that dies before recording leaves the message to be redelivered
to another worker, and a redelivered message for a run already recorded does nothing twice.
"""

from __future__ import annotations

from typing import Protocol

from loom_common.events import RunEvent, RunRequested


class RunStore(Protocol):
    async def record_requested(self, event: RunRequested, trace_id: str | None) -> bool:
        """Insert the run; False if it was already recorded (a redelivery)."""


class RunEventSink(Protocol):
    async def emit(self, event: RunEvent) -> None: ...


async def accept_run(event: RunRequested, *, store: RunStore, events: RunEventSink,
                     trace_id: str | None) -> bool:
    """Returns True when this call recorded the run, False for a duplicate delivery."""
    created = await store.record_requested(event, trace_id)
    if created:
        await events.emit(RunEvent(tenant_id=event.tenant_id, run_id=event.run_id, seq=1,
                                   event="workflow_started", task_id=event.run_id,
                                   data={"id": event.run_id, "app_id": event.app_id,
                                         "inputs": event.inputs}))
    return created
