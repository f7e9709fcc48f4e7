"""Publishing events and settling consumed messages, the same way in every service.

`publish` sends an event to its JetStream subject with trace context, tenant id and a
deduplication id in the headers, and waits for the stream's ack (so a returned publish is
durable; a reply from anyone else is not taken for the ack). `handling` wraps a handler body:
it adopts the message's context for logs and decides the JetStream outcome from what the body
raised:

    returned normally      -> ack
    RetryableError / other -> nack with back-off (redelivery), or dead-letter on the last try
    PermanentError         -> term + dead-letter (never redelivered)
    Superseded             -> nothing: left unsettled for the newer delivery that owns it
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors
from faststream.nats import NatsBroker, NatsMessage
from nats.js.api import PubAck, StreamConfig

from loom_common import bus
from loom_common.errors import PermanentError, RetryableError, Superseded
from loom_common.events import DeadLetter, Event, RunEvent, read_run_events
from loom_common.logging import get_logger
from loom_common.retry import RetryPolicy
from loom_common.telemetry import adopt_incoming, outgoing_headers

log = get_logger(__name__)

REDELIVERY_BACKOFF = RetryPolicy(initial_interval_s=0.5, backoff_coefficient=2.0, maximum_interval_s=30.0)


# What nats-py raises when the first reply to a JetStream publish is not the stream's ack: empty or
# not JSON (JSONDecodeError), JSON but not an object (AttributeError), an object with no stream or
# seq (TypeError). A core subscriber on a stream's subject that answers what it gets (FastStream's
# default when a message has a reply subject, as every JetStream publish has) sends such a reply,
# and whichever of the two comes first wins the request.
_NOT_AN_ACK = (json.JSONDecodeError, AttributeError, TypeError)
_NO_REPLY = (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError)


class PublishNotAcknowledged(RetryableError):
    """The stream gave no ack in time (NATS down or slow, no stream on the subject): the event may
    not be stored; publishing it again is safe (same Nats-Msg-Id: the stream keeps one copy)."""

    code = "bus_unavailable"


async def publish(broker: NatsBroker, subject: str, event: Event, *, stream: str | None = None,
                  timeout_s: float = 5.0) -> None:
    headers = outgoing_headers(tenant_id=event.tenant_id, run_id=getattr(event, "run_id", None))
    headers["Nats-Msg-Id"] = event.event_id
    try:
        await broker.publish(event, subject, headers=headers, stream=stream, timeout=timeout_s)
    except _NOT_AN_ACK as exc:
        if stream is None:
            raise
        # Someone else's reply came first: the event went out, the stream's ack was dropped. Send it
        # again under the same Nats-Msg-Id (stored once) and this time wait for the ack itself.
        log.warning("a publish reply was not the stream's ack; awaiting the ack", subject=subject, error=repr(exc))
        await _publish_awaiting_ack(broker, subject, event, {**headers, "Nats-Expected-Stream": stream}, timeout_s)
    except _NO_REPLY as exc:
        if stream is None:
            raise
        # Nothing answered in time (NATS slow or down, no stream on the subject): the same typed,
        # retryable error as an ack that never came, whichever way nats-py reports it.
        raise _not_acknowledged(subject, timeout_s) from exc


def _not_acknowledged(subject: str, timeout_s: float) -> PublishNotAcknowledged:
    return PublishNotAcknowledged(f"no ack from the stream for {subject} within {timeout_s} s", next_retry_delay_s=1.0)


async def _publish_awaiting_ack(broker: NatsBroker, subject: str, event: Event, headers: dict[str, str],
                                timeout_s: float) -> PubAck:
    """A JetStream publish on a reply inbox of its own, which skips replies that are not an ack."""
    nc = broker.connection
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        await nc.publish(subject, event.model_dump_json().encode(), reply=inbox,
                         headers={**headers, "content-type": "application/json"})
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                msg = await sub.next_msg(timeout=left)
            except nats.errors.TimeoutError:
                break
            try:
                reply = json.loads(msg.data)
            except ValueError:
                continue  # not the stream's
            if isinstance(reply, dict) and isinstance(reply.get("error"), dict):  # the stream refused it
                raise nats.js.errors.APIError.from_error(reply["error"])
            if isinstance(reply, dict) and "stream" in reply and "seq" in reply:
                return PubAck.from_response(reply)
        raise _not_acknowledged(subject, timeout_s)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def ensure_streams(broker: NatsBroker, replicas: int = 1) -> None:
    """Create or update every stream of `bus.ALL_STREAMS` with `replicas` copies (the setting
    LOOM_JETSTREAM_REPLICAS: 3 on a 3-node NATS cluster); idempotent, run at start-up."""
    from nats.js.errors import BadRequestError

    js = broker.connection.jetstream()
    for stream in bus.ALL_STREAMS:
        cfg: StreamConfig = stream.config
        cfg.num_replicas = replicas
        subjects = list(stream.subjects)
        try:
            await js.add_stream(cfg, subjects=subjects)
        except BadRequestError:  # exists with another config: bring it up to date
            await js.update_stream(cfg, subjects=subjects)


def current_message(broker: NatsBroker) -> NatsMessage:
    """The message the running handler was called with. Hot handlers take it from here rather
    than declaring a `msg: NatsMessage` parameter: FastStream's dependency injection
    (fast_depends 3.0) resolves such a context field, whose resolver is synchronous, in a worker
    thread, which costs every message a thread hop (futexes and GIL hand-offs)."""
    msg = broker.context.get_local("message")
    if msg is None:
        raise RuntimeError("no message in context: current_message() called outside a handler")
    return msg


def deliveries(msg: NatsMessage) -> int:
    """How many times this message has been delivered, this time included (1 in tests)."""
    try:
        return int(msg.raw_message.metadata.num_delivered)
    except Exception:
        return 1


def stored_at(msg: NatsMessage) -> float | None:
    """When JetStream stored this message (the server's wall clock, epoch seconds); None when
    unknown (a message not from a stream, e.g. in tests)."""
    try:
        return msg.raw_message.metadata.timestamp.timestamp()
    except Exception:
        return None


async def last_run_event(broker: NatsBroker, run_id: str) -> RunEvent | None:
    """The last event stored on the run's subject (None if none, or unreadable)."""
    js = broker.connection.jetstream()
    try:
        msg = await js.get_last_msg(bus.RUN_EVENTS.name, bus.run_events(run_id))
    except Exception:  # nats.js.errors.NotFoundError: nothing published yet
        return None
    try:
        return read_run_events(msg.data)[-1]  # one event, or a batch's last
    except ValueError:
        return None


async def last_run_event_seq(broker: NatsBroker, run_id: str) -> int:
    """The seq of the last event stored on the run's subject (0 if none, or unreadable): where a
    resumed run goes on numbering, and how a reader knows it has missed some."""
    last = await last_run_event(broker, run_id)
    return last.seq if last is not None else 0


@contextlib.asynccontextmanager
async def handling(msg: NatsMessage, consumer: bus.Consumer, broker: NatsBroker | None = None
                   ) -> AsyncIterator[None]:
    """Run a handler body under the message's context and settle the message from its outcome."""
    attempt = deliveries(msg)
    with adopt_incoming(msg.headers):
        try:
            yield
        except Superseded as exc:
            # An ack would settle the message under the newer delivery still working on it (lost
            # if that worker then dies); a nak would redeliver it at once to a third worker.
            log.info("stale delivery left unsettled", consumer=consumer.durable, reason=str(exc), attempt=attempt)
            return
        except PermanentError as exc:
            log.warning("message refused", consumer=consumer.durable, error=str(exc), attempt=attempt)
            await _dead_letter(broker, msg, consumer, attempt, f"permanent: {exc}")
            await msg.reject()  # JetStream "term": never redelivered
            return
        except Exception as exc:
            if attempt >= consumer.max_deliver:
                log.error("message dead-lettered", consumer=consumer.durable, error=repr(exc), attempt=attempt)
                await _dead_letter(broker, msg, consumer, attempt, f"gave up after {attempt}: {exc!r}")
                await msg.reject()
                return
            delay = exc.next_retry_delay_s if isinstance(exc, RetryableError) and exc.next_retry_delay_s \
                else REDELIVERY_BACKOFF.delay_for(attempt)
            log.warning("message will be redelivered", consumer=consumer.durable, error=repr(exc),
                        attempt=attempt, delay_s=delay)
            await msg.nack(delay=delay)
            return
        await msg.ack()


async def _dead_letter(broker: NatsBroker | None, msg: NatsMessage, consumer: bus.Consumer,
                       attempt: int, reason: str) -> None:
    if broker is None:
        return
    tenant = (msg.headers or {}).get("loom-tenant-id", "")
    letter = DeadLetter(tenant_id=tenant, consumer=consumer.durable, subject=consumer.subject,
                        deliveries=attempt, reason=reason[:2000],
                        payload=msg.body.decode(errors="replace") if isinstance(msg.body, bytes) else str(msg.body))
    try:
        await publish(broker, bus.dead_letter(consumer.durable), letter, stream=bus.DEAD_LETTERS.name)
    except Exception as exc:
        log.error("dead letter not published", error=repr(exc))
