"""FastStream's per-message lines ("Received", "Processed") go through the service's JSON log
at DEBUG, not through a text handler of its own at INFO whatever LOOM_LOG_LEVEL says."""

from __future__ import annotations

import asyncio
import json

import pytest

from loom_common.runtime import ServiceRuntime
from loom_common.settings import ServiceSettings

pytestmark = pytest.mark.integration


async def test_per_message_bus_lines_are_debug_json(nats_url, capfd) -> None:
    rt = ServiceRuntime("buslog", ServiceSettings(nats_url=nats_url, log_level="INFO", event_loop="asyncio"))
    heard = asyncio.Event()

    @rt.broker.subscriber("test.buslog")
    async def on_message(body: str) -> None:
        heard.set()

    await rt.start()
    try:
        await rt.broker.publish("hello", "test.buslog")
        await asyncio.wait_for(heard.wait(), 10)
        await asyncio.sleep(0.1)  # the "Processed" line comes after the handler returns
    finally:
        await rt.stop()
    lines = [line for line in capfd.readouterr().out.splitlines() if line.strip()]
    assert lines, "the service logged nothing at all"
    assert all(line.startswith("{") for line in lines), lines  # JSON, every one
    events = [json.loads(line)["event"] for line in lines]
    assert not any("Received" in e or "Processed" in e for e in events), events
    assert "service started" in events


async def test_a_failing_handler_is_still_logged_as_an_error(nats_url, capfd) -> None:
    rt = ServiceRuntime("buslog", ServiceSettings(nats_url=nats_url, log_level="WARNING", event_loop="asyncio"))
    called = asyncio.Event()

    @rt.broker.subscriber("test.buslog.fail")
    async def on_message(body: str) -> None:
        called.set()
        raise ValueError("handler broke")

    await rt.start()
    try:
        await rt.broker.publish("hello", "test.buslog.fail")
        await asyncio.wait_for(called.wait(), 10)
        await asyncio.sleep(0.1)
    finally:
        await rt.stop()
    records = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert any(r["level"] == "error" and "handler broke" in json.dumps(r) for r in records), records
