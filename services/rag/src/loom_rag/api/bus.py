"""The RAG service on the bus: the ingest work-queue consumer, and the adapters that put
documents on the queue and progress on each document's event subject.

The consumer is `bus.RAG_INGEST` (durable, manual ack settled by `messaging.handling`) with
this service's `ingest_ack_wait_s`: after every embedded batch the handler marks the message
in progress, so a long document is never redelivered while a live worker has it, and a
crashed worker's document comes back after one ack_wait. The runtime keeps the durable's
ack_wait in line and its backlog gauge current (ServiceRuntime.consumer).
"""

from __future__ import annotations

import dataclasses

from faststream.nats import ConsumerConfig, NatsBroker

from loom_common import bus, messaging
from loom_common.events import DocumentIngestRequested, DocumentProgress
from loom_common.runtime import Dependency
from loom_rag.ingest.pipeline import Ingestor


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


def register_ingest_consumer(broker: NatsBroker, ingestor: Dependency[Ingestor], *, ack_wait_s: float,
                             max_workers: int) -> None:
    """Subscribe the ingest handler. The runtime builds `ingestor` before the consumer fetches
    its first message (loom_common.runtime), so a handler always finds it."""
    c = consumer(ack_wait_s)
    kwargs = c.subscriber_kwargs()
    kwargs["config"] = ConsumerConfig(ack_wait=c.ack_wait_s, max_deliver=c.max_deliver)

    @broker.subscriber(**kwargs, max_workers=max_workers)
    async def ingest_document(event: DocumentIngestRequested) -> None:
        msg = messaging.current_message(broker)
        async with messaging.handling(msg, c, broker):
            final = messaging.deliveries(msg) >= c.max_deliver
            await ingestor.get().ingest(event, final=final, heartbeat=msg.in_progress)
