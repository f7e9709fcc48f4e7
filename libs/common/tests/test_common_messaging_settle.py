"""`messaging.handling` settles a message from what its body raised (unit test: a recording
stand-in for the NatsMessage, no server): ack, nack with back-off, term, and nothing at all
for a stale delivery (`Superseded`)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from loom_common import bus, messaging
from loom_common.errors import PermanentError, RetryableError, Superseded


class RecordingMessage:
    def __init__(self, delivered: int = 1) -> None:
        self.headers: dict[str, str] = {}
        self.body = b"{}"
        self.raw_message = SimpleNamespace(metadata=SimpleNamespace(num_delivered=delivered))
        self.calls: list[tuple] = []

    async def ack(self) -> None:
        self.calls.append(("ack",))

    async def nack(self, delay: float | None = None) -> None:
        self.calls.append(("nack", delay))

    async def reject(self) -> None:
        self.calls.append(("reject",))


async def _settle(exc: BaseException | None, delivered: int = 1) -> list[tuple]:
    msg = RecordingMessage(delivered)
    async with messaging.handling(msg, bus.ORCHESTRATOR_RUNS):  # type: ignore[arg-type]
        if exc is not None:
            raise exc
    return msg.calls


async def test_handling_leaves_a_superseded_delivery_unsettled() -> None:
    assert await _settle(Superseded("run r1 is owned by delivery 3")) == []
    # even on what would otherwise be the last delivery (no dead letter, no term)
    assert await _settle(Superseded("stale"), delivered=bus.ORCHESTRATOR_RUNS.max_deliver) == []


@pytest.mark.parametrize(
    ("exc", "delivered", "expected"),
    [
        (None, 1, [("ack",)]),
        (RetryableError("busy", next_retry_delay_s=2.0), 1, [("nack", 2.0)]),
        (RuntimeError("boom"), 1, [("nack", messaging.REDELIVERY_BACKOFF.delay_for(1))]),
        (PermanentError("bad"), 1, [("reject",)]),
        (RuntimeError("boom"), bus.ORCHESTRATOR_RUNS.max_deliver, [("reject",)]),
    ],
)
async def test_handling_keeps_its_other_outcomes(exc, delivered, expected) -> None:
    assert await _settle(exc, delivered) == expected
