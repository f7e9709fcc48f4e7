"""One service lifespan (loom_common.runtime): a service's dependencies are built before it
consumes a message, closed in reverse order at stop, and its durable consumers are kept as
their declarations say."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import nats
import pytest
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsMessage, PullSub
from nats.js.api import ConsumerConfig as JsConsumerConfig
from prometheus_client import CollectorRegistry, Gauge

from loom_common import consumers
from loom_common.bus import Consumer
from loom_common.runtime import ServiceRuntime
from loom_common.settings import ServiceSettings
from loom_common.testing import eventually


def _runtime(name: str, **settings) -> ServiceRuntime:
    return ServiceRuntime(name, ServiceSettings(event_loop="asyncio", log_level="WARNING", **settings),
                          use_nats="nats_url" in settings)


def _recorded(name: str, log: list[str], value: object = None):
    @contextlib.asynccontextmanager
    async def build(rt: ServiceRuntime):
        log.append(f"build {name}")
        yield value if value is not None else name
        log.append(f"close {name}")
    return build


async def test_dependencies_are_built_in_order_and_closed_in_reverse() -> None:
    rt = _runtime("lifespan-order")
    log: list[str] = []
    first = rt.dependency("first", _recorded("first", log))
    rt.dependency("second", _recorded("second", log))
    third = rt.dependency("third", _recorded("third", log), on_http_state=True)
    with pytest.raises(RuntimeError, match="'first' used before the runtime built it"):
        first.get()
    await rt.start()
    assert log == ["build first", "build second", "build third"]
    assert first.get() == "first" and rt.http.state.third == "third"
    await rt.stop()
    assert log[3:] == ["close third", "close second", "close first"]
    assert not third.built  # a handler that ran now would be told, not handed a closed client


async def test_a_broker_that_cannot_drain_does_not_stop_the_rest_closing(nats_url, monkeypatch) -> None:
    """Stopped while NATS is unreachable, the broker's drain raises (nats-py: "connection
    reconnecting"): the dependencies still close, instead of the process dying mid-stop."""
    rt = _runtime("lifespan-drain-fails", nats_url=nats_url)
    log: list[str] = []
    rt.dependency("first", _recorded("first", log))
    await rt.start()

    async def cannot_drain() -> None:
        raise nats.errors.ConnectionReconnectingError

    real_stop = rt.broker.stop
    monkeypatch.setattr(rt.broker, "stop", cannot_drain)
    await rt.stop()
    assert log == ["build first", "close first"]
    await real_stop()


async def test_a_failing_close_does_not_stop_the_others_closing() -> None:
    rt = _runtime("lifespan-close-fails")
    log: list[str] = []
    rt.dependency("first", _recorded("first", log))

    @contextlib.asynccontextmanager
    async def broken(rt: ServiceRuntime):
        yield "broken"
        raise OSError("close failed")

    rt.dependency("broken", broken)
    rt.dependency("last", _recorded("last", log))
    await rt.start()
    await rt.stop()
    assert log == ["build first", "build last", "close last", "close first"]


async def test_a_failed_build_closes_what_was_built_and_fails_the_start() -> None:
    rt = _runtime("lifespan-build-fails")
    log: list[str] = []
    rt.dependency("first", _recorded("first", log))

    @contextlib.asynccontextmanager
    async def unreachable(rt: ServiceRuntime):
        raise ConnectionError("peer down")
        yield  # pragma: no cover

    rt.dependency("unreachable", unreachable)
    with pytest.raises(ConnectionError):
        await rt.start()
    assert log == ["build first", "close first"]


async def test_start_and_stop_hooks_run_among_the_dependencies() -> None:
    rt = _runtime("lifespan-hooks")
    log: list[str] = []
    rt.dependency("store", _recorded("store", log))

    @rt.on_start
    async def started(rt: ServiceRuntime) -> None:
        log.append("on_start")

    @rt.on_stop
    async def stopping(rt: ServiceRuntime) -> None:
        log.append("on_stop")

    await rt.start()
    await rt.stop()
    assert log == ["build store", "on_start", "on_stop", "close store"]


async def test_background_loops_run_while_serving_and_are_cancelled_before_dependencies_close() -> None:
    rt = _runtime("lifespan-background")
    log: list[str] = []
    store = rt.dependency("store", _recorded("store", log))
    running = asyncio.Event()

    async def loop(rt: ServiceRuntime) -> None:
        log.append(f"loop sees {store.get()}")
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            log.append("loop cancelled")

    rt.background("loop", loop)
    await rt.start()
    await asyncio.wait_for(running.wait(), 10)
    await rt.stop()
    assert log == ["build store", "loop sees store", "loop cancelled", "close store"]


def _test_consumer(tag: str, *, ack_wait_s: float = 30.0, max_deliver: int = 3) -> Consumer:
    stream = JStream(f"LIFESPAN_{tag}", subjects=[f"test.lifespan.{tag}"], declare=False)
    return Consumer(durable=f"lifespan-{tag}", stream=stream, subject=f"test.lifespan.{tag}",
                    ack_wait_s=ack_wait_s, max_deliver=max_deliver)


@pytest.mark.integration
async def test_a_message_published_before_start_is_handled_with_its_dependencies_built(nats_url) -> None:
    """The message waits in the stream while the service starts; the runtime fetches it only
    once the (slow) dependency is built, so the handler never answers "still starting"."""
    tag = uuid.uuid4().hex[:10]
    c = _test_consumer(tag)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name=c.stream.name, subjects=[c.subject])
    await js.publish(c.subject, b"waiting since before start")

    rt = _runtime("lifespan-consume", nats_url=nats_url)
    seen: asyncio.Queue[str] = asyncio.Queue()
    log: list[str] = []

    @contextlib.asynccontextmanager
    async def slow_store(rt: ServiceRuntime):
        # A pool or a model that takes a while: with fetching started first, the message above
        # would reach the handler now.
        for _ in range(20):
            await asyncio.sleep(0.01)
        log.append("built")
        yield "store"
        log.append("closed")

    store = rt.dependency("store", slow_store)
    rt.consumer(c)

    @rt.broker.subscriber(c.subject, stream=c.stream, durable=c.durable, ack_policy=AckPolicy.MANUAL,
                          pull_sub=PullSub(batch_size=1, timeout=1.0),
                          config=ConsumerConfig(ack_wait=c.ack_wait_s, max_deliver=c.max_deliver))
    async def handle(body: str, msg: NatsMessage) -> None:
        try:
            seen.put_nowait(f"{body} -> {store.get()}")
            await msg.ack()
        except RuntimeError as exc:
            seen.put_nowait(f"still starting: {exc}")
            await msg.nack()

    try:
        await rt.start()
        assert await asyncio.wait_for(seen.get(), 30) == "waiting since before start -> store"
        assert log == ["built"]
    finally:
        await rt.stop()
        await js.delete_stream(c.stream.name)
        await nc.close()
    assert log == ["built", "closed"]
    assert seen.empty()


@pytest.mark.integration
async def test_a_durable_is_aligned_with_its_declaration_and_its_backlog_watched(nats_url) -> None:
    tag = uuid.uuid4().hex[:10]
    old = _test_consumer(tag, ack_wait_s=30.0, max_deliver=3)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name=old.stream.name, subjects=[old.subject])
    await js.add_consumer(old.stream.name, config=JsConsumerConfig(
        durable_name=old.durable, ack_wait=old.ack_wait_s, max_deliver=old.max_deliver, filter_subject=old.subject))
    for i in range(3):
        await js.publish(old.subject, f"m{i}".encode())

    declared = _test_consumer(tag, ack_wait_s=12.0, max_deliver=7)  # this deployment's declaration
    registry = CollectorRegistry()
    gauge = Gauge(f"lifespan_backlog_{tag}", "test backlog", registry=registry)
    rt = _runtime("lifespan-align", nats_url=nats_url)
    rt.consumer(declared, backlog=gauge, every_s=0.05)
    try:
        await rt.start()
        info = await js.consumer_info(declared.stream.name, declared.durable)
        assert (info.config.ack_wait, info.config.max_deliver) == (12.0, 7)
        await eventually(lambda: registry.get_sample_value(f"lifespan_backlog_{tag}") == 3,
                         "the backlog watcher reads 3 pending messages")
        assert await consumers.align(rt.broker, declared) == {}  # aligned: nothing left to change
    finally:
        await rt.stop()
        await js.delete_stream(old.stream.name)
        await nc.close()


@pytest.mark.integration
async def test_a_durable_not_created_yet_is_left_to_its_subscriber(nats_url) -> None:
    c = _test_consumer(uuid.uuid4().hex[:10])
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name=c.stream.name, subjects=[c.subject])
    rt = _runtime("lifespan-no-durable", nats_url=nats_url)
    try:
        await rt.broker.connect()
        assert await consumers.align(rt.broker, c) == {}
    finally:
        await rt.broker.stop()
        await js.delete_stream(c.stream.name)
        await nc.close()
