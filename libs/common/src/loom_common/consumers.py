"""A service's durable consumers, kept as `loom_common.bus` declares them.

JetStream keeps a durable consumer's config from the day it was created: a deployment that
changes `ack_wait` or `max_deliver` (a declaration in `bus`, or a service setting that
overrides it) would otherwise go on with the old values. `align` brings the editable fields of
an existing durable in line before the service consumes; `watch_backlog` keeps a gauge of its
pending plus delivered-but-unacked messages. The runtime runs both for every consumer a service
names with `ServiceRuntime.consumer` (loom_common.runtime).
"""

from __future__ import annotations

import asyncio
import dataclasses

import nats.js.errors
from faststream.nats import NatsBroker
from prometheus_client import Gauge

from loom_common.bus import Consumer
from loom_common.logging import get_logger

log = get_logger(__name__)


def _changes(config, consumer: Consumer) -> dict:
    """The fields of `config` (JetStream's ConsumerConfig) that differ from the declaration."""
    changes: dict = {}
    if config.ack_wait is not None and abs(config.ack_wait - consumer.ack_wait_s) > 1e-3:
        changes["ack_wait"] = consumer.ack_wait_s
    if config.max_deliver is not None and config.max_deliver != consumer.max_deliver:
        changes["max_deliver"] = consumer.max_deliver
    return changes


async def align(broker: NatsBroker, consumer: Consumer) -> dict:
    """Update an existing durable's ack_wait and max_deliver (both editable in place) to the
    declaration's; returns what changed. A durable that does not exist yet is left to the
    subscriber, which creates it from the same declaration."""
    js = broker.connection.jetstream()
    try:
        info = await js.consumer_info(consumer.stream.name, consumer.durable)
        changes = _changes(info.config, consumer)
        if changes:
            await js.add_consumer(consumer.stream.name, config=dataclasses.replace(info.config, **changes))
            log.info("durable consumer aligned", durable=consumer.durable, **changes)
        return changes
    except nats.js.errors.NotFoundError:
        return {}
    except Exception as exc:  # the service still starts: the old config keeps working
        log.warning("durable consumer not aligned", durable=consumer.durable, error=repr(exc))
        return {}


async def watch_backlog(broker: NatsBroker, consumer: Consumer, gauge: Gauge, every_s: float) -> None:
    """Keep `gauge` at the consumer's pending + unacknowledged messages, until cancelled."""
    task = asyncio.current_task()
    while True:
        try:
            info = await broker.connection.jetstream().consumer_info(consumer.stream.name, consumer.durable)
            gauge.set(info.num_pending + info.num_ack_pending)
        except Exception:
            # nats-py can turn a cancellation inside its request into its own TimeoutError:
            # stop when asked, whatever the request raised.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None
        await asyncio.sleep(every_s)
