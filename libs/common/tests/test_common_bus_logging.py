"""FastStream's per-message lines ("Received", "Processed") go through the service's JSON log
at DEBUG, not through a text handler of its own at INFO whatever LOOM_LOG_LEVEL says."""

from __future__ import annotations

import asyncio
import json

import pytest

from loom_common.runtime import ServiceRuntime
from loom_common.settings import ServiceSettings

pytestmark = pytest.mark.integration


async def _one_message_through_a_service(nats_url: str, capfd, log_level: str, fail: bool = False) -> list[str]:
    """Start a runtime with one subscriber, deliver it one message, stop: what it printed."""
    rt = ServiceRuntime("buslog", ServiceSettings(nats_url=nats_url, log_level=log_level, event_loop="asyncio"))
    handled: asyncio.Queue[str] = asyncio.Queue()

    @rt.broker.subscriber("test.buslog")
    async def on_message(body: str) -> None:
        handled.put_nowait(body)
        if fail and body == "hello":
            raise ValueError("handler broke")

    await rt.start()
    try:
        # The "Processed" (or error) line comes after the handler returns. A subscription's
        # messages are handled one after another: once the second one is in hand, the first
        # one's lines are written (no sleep that a loaded machine could outlast).
        await rt.broker.publish("hello", "test.buslog")
        await rt.broker.publish("barrier", "test.buslog")
        assert [await asyncio.wait_for(handled.get(), 10) for _ in range(2)] == ["hello", "barrier"]
    finally:
        await rt.stop()
    return [line for line in capfd.readouterr().out.splitlines() if line.strip()]


async def test_per_message_bus_lines_are_debug_json(nats_url, capfd) -> None:
    lines = await _one_message_through_a_service(nats_url, capfd, "INFO")
    assert lines, "the service logged nothing at all"
    assert all(line.startswith("{") for line in lines), lines  # JSON, every one
    events = [json.loads(line)["event"] for line in lines]
    assert not any("Received" in e or "Processed" in e for e in events), events
    assert "service started" in events


async def test_a_failing_handler_is_still_logged_as_an_error(nats_url, capfd) -> None:
    lines = await _one_message_through_a_service(nats_url, capfd, "WARNING", fail=True)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(r["level"] == "error" and "handler broke" in json.dumps(r) for r in records), records
