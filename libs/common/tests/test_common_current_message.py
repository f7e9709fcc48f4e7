"""`messaging.current_message`: a handler gets the message it was called with without declaring a
`msg: NatsMessage` parameter, whose resolution by FastStream's dependency injection costs a
worker-thread hop per message (the reason hot handlers use `current_message`)."""

from __future__ import annotations

import anyio.to_thread
import pytest
from faststream.nats import NatsBroker, NatsMessage, TestNatsBroker
from pydantic import BaseModel

from loom_common import messaging


class Ping(BaseModel):
    n: int


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every call FastStream's injection makes into a worker thread while a message is handled."""
    hops: list[object] = []
    real = anyio.to_thread.run_sync

    async def counting(func, *args, **kwargs):
        hops.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return hops


async def test_a_handler_reads_its_message_from_the_context_without_a_thread_hop(thread_hops) -> None:
    broker = NatsBroker()
    seen: list[tuple[int, bytes]] = []

    @broker.subscriber("ping.current")
    async def on_ping(event: Ping) -> None:
        seen.append((event.n, messaging.current_message(broker).body))

    async with TestNatsBroker(broker) as br:
        await br.publish({"n": 7}, "ping.current")

    assert seen == [(7, b'{"n":7}')]
    assert thread_hops == []


async def test_a_declared_message_parameter_costs_a_thread_hop(thread_hops) -> None:
    """What current_message avoids (fast_depends resolves a synchronous context field in a
    thread); if a FastStream upgrade stops doing so, this fails and the helper may go."""
    broker = NatsBroker()

    @broker.subscriber("ping.declared")
    async def on_ping(event: Ping, msg: NatsMessage) -> None:
        assert msg.body

    async with TestNatsBroker(broker) as br:
        await br.publish({"n": 1}, "ping.declared")

    assert len(thread_hops) >= 1


def test_current_message_outside_a_handler_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="outside a handler"):
        messaging.current_message(NatsBroker())
