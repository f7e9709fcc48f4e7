"""A JetStream publish waits for the stream's ack, and a reply from anyone else is not that ack.

Every JetStream publish is a request: it carries a reply subject on which the stream answers
with its ack. A core subscriber on the same subject gets the message too, reply subject and
all, and FastStream's subscribers answer any message that has one (an empty body for a handler
that returns None) unless they are declared `no_reply=True`. Whichever reply comes first wins
the request; an empty one made nats-py fail the publish (`json.loads('')`). That was the stop
answered 500 about once in 20 tries: the orchestrator's `runs.cancel.*` subscriber answered the
gateway's publish. Real NATS server in every test here."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import pytest
from faststream.nats import NatsBroker
from nats.js.client import JetStreamContext

from loom_common import messaging
from loom_common.events import RunCancelRequested

pytestmark = pytest.mark.integration


@pytest.fixture
async def stream(nats_url: str):
    """A stream of its own on `test.ack.<id>.>`, and a connected broker: (broker, name, subject)."""
    tag = uuid.uuid4().hex[:10]
    broker = NatsBroker(nats_url)
    await broker.connect()
    js = broker.connection.jetstream()
    name, subject = f"TEST_ACK_{tag}", f"test.ack.{tag}.event"
    await js.add_stream(name=name, subjects=[f"test.ack.{tag}.>"])
    yield broker, name, subject
    await js.delete_stream(name)
    await broker.stop()


async def _stored(broker: NatsBroker, name: str) -> int:
    return (await broker.connection.jetstream().stream_info(name)).state.messages


async def _rogue(nats_url: str, subject: str, **subscriber_kw) -> tuple[NatsBroker, asyncio.Queue[str]]:
    """A FastStream core subscriber on `subject` (as the orchestrator's stop listener is): started."""
    rogue = NatsBroker(nats_url)
    seen: asyncio.Queue[str] = asyncio.Queue()

    @rogue.subscriber(subject, **subscriber_kw)
    async def on_event(event: RunCancelRequested) -> None:
        seen.put_nowait(event.run_id)

    await rogue.start()
    # The server must hold the subscription before another connection publishes: a flush waits for
    # its PONG, which comes after the SUB. (Without it a fresh-clone run saw "no responders".)
    await rogue.connection.flush()
    return rogue, seen


@pytest.mark.parametrize("no_reply", [False, True])
async def test_a_core_subscriber_answers_a_jetstream_publish_unless_it_is_no_reply(nats_url, stream, no_reply):
    _, _, subject = stream
    rogue, seen = await _rogue(nats_url, subject, no_reply=no_reply)
    nc = rogue.connection  # publish from the subscriber's own connection: one ordered pipe (see below)
    try:
        replies = await nc.subscribe(nc.new_inbox())
        event = RunCancelRequested(tenant_id="t", run_id="r1")
        await nc.publish(subject, event.model_dump_json().encode(), reply=replies.subject,
                         headers={"Nats-Msg-Id": event.event_id})
        bodies = []
        while not any(b.startswith(b"{") for b in bodies):  # the stream's ack, whenever it comes
            bodies.append((await replies.next_msg(timeout=10)).data)
        # One subscription's messages are handled one after another: once a second message is in
        # the handler, the first one's reply (if any) is written; a flush (PING/PONG) on this same
        # connection then brings it back to us before it returns.
        await nc.publish(subject, RunCancelRequested(tenant_id="t", run_id="r2").model_dump_json().encode())
        assert [await asyncio.wait_for(seen.get(), 10) for _ in range(2)] == ["r1", "r2"]
        await nc.flush()
        while replies.pending_msgs:
            bodies.append((await replies.next_msg(timeout=1)).data)
        acks = [json.loads(b) for b in bodies if b.startswith(b"{")]
        assert len(acks) == 1 and acks[0]["seq"] >= 1, bodies
        assert bodies.count(b"") == (0 if no_reply else 1), bodies
    finally:
        await rogue.stop()


async def test_publish_gets_the_ack_when_another_reply_won_the_race(nats_url, stream, monkeypatch):
    """The race made deterministic: the first try stores the event but reads a rogue's empty reply
    (as nats-py does when it loses); publish must still return, with the event stored once."""
    broker, name, subject = stream
    rogue, _ = await _rogue(nats_url, subject)  # answers the second try too: the ack must be told apart
    real_publish = JetStreamContext.publish
    tries: list[str] = []

    async def first_reply_was_empty(self, subject, payload=b"", timeout=None, stream=None, headers=None, **kw):
        tries.append(subject)
        await real_publish(self, subject, payload, timeout=timeout, stream=stream, headers=headers, **kw)
        return json.loads(b"")  # what nats-py does with the empty reply it read first: JSONDecodeError

    monkeypatch.setattr(JetStreamContext, "publish", first_reply_was_empty)
    try:
        await messaging.publish(broker, subject, RunCancelRequested(tenant_id="t", run_id="r"), stream=name)
    finally:
        await rogue.stop()
    assert tries == [subject]  # FastStream's publish once; the retry went its own way
    assert await _stored(broker, name) == 1  # the same Nats-Msg-Id: the stream kept one copy


# A replier in a process of its own, as the orchestrator is to the gateway: in-process, Python's
# own scheduling made it lose every race; from another process it wins ~1 in 100 here.
_REPLIER = """
import asyncio, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1])
    async def answer(msg):
        if msg.reply:
            await nc.publish(msg.reply, b"")
    await nc.subscribe(sys.argv[2], cb=answer)
    await nc.flush()
    print("listening", flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


async def test_publish_through_a_replier_in_another_process_always_succeeds(nats_url, stream):
    """The real race, many times (nats-py's own publish failed ~3 of these 300 here)."""
    broker, name, subject = stream
    replier = await asyncio.create_subprocess_exec(sys.executable, "-c", _REPLIER, nats_url, subject,
                                                   stdout=asyncio.subprocess.PIPE)
    try:
        assert await asyncio.wait_for(replier.stdout.readline(), 30) == b"listening\n"
        for i in range(300):
            await messaging.publish(broker, subject, RunCancelRequested(tenant_id="t", run_id=f"r{i}"), stream=name)
    finally:
        replier.kill()
        await replier.wait()
    assert await _stored(broker, name) == 300


async def test_no_ack_at_all_is_a_typed_retryable_error_not_a_decode_error(nats_url, stream):
    """Only the rogue answers (no stream on the subject): a clear error naming the subject."""
    broker, name, _ = stream
    orphan = f"test.noack.{uuid.uuid4().hex[:10]}"
    rogue, _ = await _rogue(nats_url, orphan)
    try:
        with pytest.raises(messaging.PublishNotAcknowledged, match=orphan) as err:
            await messaging.publish(broker, orphan, RunCancelRequested(tenant_id="t", run_id="r"), stream=name,
                                    timeout_s=0.5)
    finally:
        await rogue.stop()
    assert err.value.code == "bus_unavailable"


@pytest.mark.parametrize("responder", ["none", "slow"])
async def test_no_reply_in_time_is_the_same_typed_error(nats_url, stream, responder):
    """Nobody on the subject (nats-py: no responders), or a reply that comes after the timeout
    (nats-py: TimeoutError; on a loaded machine even the rogue above can be that late): the same
    PublishNotAcknowledged as a missing ack, never a raw nats error."""
    broker, name, _ = stream
    orphan = f"test.noack.{uuid.uuid4().hex[:10]}"
    slow = None
    if responder == "slow":
        slow = NatsBroker(nats_url)

        @slow.subscriber(orphan)
        async def late(event: RunCancelRequested) -> None:
            await asyncio.sleep(2)

        await slow.start()
        await slow.connection.flush()
    try:
        with pytest.raises(messaging.PublishNotAcknowledged, match=orphan) as err:
            await messaging.publish(broker, orphan, RunCancelRequested(tenant_id="t", run_id="r"), stream=name,
                                    timeout_s=0.3)
    finally:
        if slow is not None:
            await slow.stop()
    assert err.value.code == "bus_unavailable"
