"""The RAG service on the bus: the ingest work-queue consumer, and the adapters that put
documents on the queue and progress on each document's event subject.

The consumer is `bus.RAG_INGEST` (durable, manual ack settled by `messaging.handling`) with
this service's `ingest_ack_wait_s`: after every embedded batch the handler marks the message
in progress, so a long document is never redelivered while a live worker has it, and a
crashed worker's document comes back after one ack_wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from faststream.nats import ConsumerConfig, NatsBroker, NatsMessage

from loom_common import bus, messaging
from loom_common.errors import RetryableError
from loom_common.events import DocumentIngestRequested, DocumentProgress
from loom_common.logging import get_logger
from loom_rag import metrics
from loom_rag.ingest.pipeline import Ingestor

log = get_logger(__name__)


class BusIngestQueue:
    """`ports.IngestQueue` on JetStream."""

    def __init__(self, broker: NatsBroker):
        self.broker = broker

    async def enqueue(self, *, tenant_id: str, dataset_id: str, document_id: str, revision: int) -> None:
        event = DocumentIngestRequested(tenant_id=tenant_id, dataset_id=dataset_id, document_id=document_id,
                                        revision=revision)
        await messaging.publish(self.broker, bus.DOCUMENTS_INGEST, event, stream=bus.DOCUMENTS.name)


class BusProgressSink:
    """`ports.ProgressSink` on each document's event subject."""

    def __init__(self, broker: NatsBroker):
        self.broker = broker

    async def report(self, progress: DocumentProgress) -> None:
        await messaging.publish(self.broker, bus.document_events(progress.document_id), progress,
                                stream=bus.DOCUMENT_EVENTS.name)


def consumer(ack_wait_s: float) -> bus.Consumer:
    return dataclasses.replace(bus.RAG_INGEST, ack_wait_s=ack_wait_s)


def register_ingest_consumer(broker: NatsBroker, ingestor_ref: list[Ingestor], *, ack_wait_s: float,
                             max_workers: int) -> None:
    """Subscribe the ingest handler; `ingestor_ref[0]` is filled in once the pool is up."""
    c = consumer(ack_wait_s)
    kwargs = c.subscriber_kwargs()
    kwargs["config"] = ConsumerConfig(ack_wait=c.ack_wait_s, max_deliver=c.max_deliver)

    @broker.subscriber(**kwargs, max_workers=max_workers)
    async def ingest_document(event: DocumentIngestRequested, msg: NatsMessage) -> None:
        async with messaging.handling(msg, c, broker):
            if not ingestor_ref:  # the broker starts consuming before the pool is wired
                raise RetryableError("rag worker still starting", next_retry_delay_s=1.0)
            final = messaging.deliveries(msg) >= c.max_deliver
            await ingestor_ref[0].ingest(event, final=final, heartbeat=msg.in_progress)


async def watch_backlog(broker: NatsBroker, every_s: float) -> None:
    """Keep the queue-backlog gauge current (pending + delivered-but-unacked)."""
    while True:
        with contextlib.suppress(Exception):
            info = await broker.connection.jetstream().consumer_info(bus.DOCUMENTS.name, bus.RAG_INGEST.durable)
            metrics.QUEUE_BACKLOG.set(info.num_pending + info.num_ack_pending)
        await asyncio.sleep(every_s)


async def align_consumer(broker: NatsBroker, ack_wait_s: float) -> None:
    """An existing durable keeps the config it was created with; bring its ack_wait in line
    with this deployment's (an editable field: JetStream updates it in place)."""
    js = broker.connection.jetstream()
    try:
        info = await js.consumer_info(bus.DOCUMENTS.name, bus.RAG_INGEST.durable)
        if info.config.ack_wait is not None and abs(info.config.ack_wait - ack_wait_s) > 1e-3:
            config = dataclasses.replace(info.config, ack_wait=ack_wait_s)
            await js.add_consumer(bus.DOCUMENTS.name, config=config)
            log.info("ingest consumer ack_wait updated", ack_wait_s=ack_wait_s)
    except Exception as exc:
        log.warning("ingest consumer config not aligned", error=repr(exc))
