"""The run's ordered event stream on `run.<run_id>.events`.

`RunEventPublisher.emit` numbers an event (seq 1, 2, 3, ... across redeliveries: a resumed
run continues from the last seq found on the subject) and queues it; one pump task
publishes the queue in order, awaiting each JetStream ack, so seq order is wire order even
when concurrent branches emit at once, and the engine never waits on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from faststream.nats import NatsBroker

from loom_common import bus, messaging
from loom_common.events import RunEvent
from loom_common.logging import get_logger

log = get_logger(__name__)


async def last_seq(broker: NatsBroker, run_id: str) -> int:
    """The seq of the last event already on the run's subject (0 if none)."""
    js = broker.connection.jetstream()
    try:
        msg = await js.get_last_msg(bus.RUN_EVENTS.name, bus.run_events(run_id))
    except Exception:  # nats.js.errors.NotFoundError: nothing published yet
        return 0
    try:
        return RunEvent.model_validate_json(msg.data).seq
    except ValueError:
        return 0


async def cancel_requested(broker: NatsBroker, run_id: str) -> str | None:
    """A stop published before this worker took the run (kept by the RUN_CONTROL stream)."""
    from loom_common.events import RunCancelRequested

    js = broker.connection.jetstream()
    try:
        msg = await js.get_last_msg(bus.RUN_CONTROL.name, bus.run_cancel(run_id))
    except Exception:
        return None
    try:
        return RunCancelRequested.model_validate_json(msg.data).reason
    except ValueError:
        return "stopped"


class RunEventPublisher:
    def __init__(self, broker: NatsBroker, run_id: str, tenant_id: str, start_seq: int = 0) -> None:
        self.broker, self.run_id, self.tenant_id = broker, run_id, tenant_id
        self.seq = start_seq
        self._queue: asyncio.Queue[RunEvent | None] = asyncio.Queue()
        self._pump = asyncio.create_task(self._run())

    def emit(self, event: str, data: dict[str, Any], node_id: str | None = None) -> None:
        self.seq += 1
        self._queue.put_nowait(RunEvent(tenant_id=self.tenant_id, run_id=self.run_id, seq=self.seq, event=event,
                                        task_id=self.run_id, node_id=node_id, data=data))

    async def _run(self) -> None:
        subject = bus.run_events(self.run_id)
        while (event := await self._queue.get()) is not None:
            for attempt in range(5):
                try:
                    await messaging.publish(self.broker, subject, event, stream=bus.RUN_EVENTS.name)
                    break
                except Exception as exc:  # the stream dedups on event_id, so a retry never doubles it
                    log.warning("run event not published", seq=event.seq, attempt=attempt + 1, error=repr(exc))
                    await asyncio.sleep(0.2 * 2 ** attempt)

    async def flush(self) -> None:
        """Publish everything emitted so far, then stop the pump."""
        self._queue.put_nowait(None)
        await self._pump

    async def close(self) -> None:
        self._pump.cancel()
        with contextlib.suppress(BaseException):
            await self._pump
