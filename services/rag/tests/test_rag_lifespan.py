"""The rag service's lifespan (loom_common.runtime): a work item published while rag is down is
taken, once rag starts, by a handler whose ingestor is already built. Before, the consumer
fetched before the start hook wired the pool, and the first delivery was nacked as "rag worker
still starting" and redelivered a second later."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest

from loom_common import bus
from loom_common.db import _with_database
from loom_common.devstack import infra
from loom_common.events import DocumentIngestRequested
from loom_common.testing import eventually
from loom_rag.app import build
from loom_rag.settings import RagSettings
from loom_rag.store.tenancy import TenantDb

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a fresh NATS and rag's migrations


async def test_an_item_published_before_start_is_settled_on_its_first_delivery(database_url, tmp_path,
                                                                               monkeypatch) -> None:
    opened = TenantDb.open.__func__

    async def slow_open(cls, pool):  # a database slow to answer at start, as under load
        await asyncio.sleep(1.5)
        return await opened(cls, pool)

    monkeypatch.setattr(TenantDb, "open", classmethod(slow_open))
    server = infra.EmbeddedNats(tmp_path / "nats").start()  # its own JetStream: no other test's items
    db = _with_database(database_url, f"rag_{uuid.uuid4().hex[:10]}")
    settings = RagSettings(nats_url=server.url, database_url=db, home=tmp_path / "home",
                           grpc_port=infra.free_port(), http_port=infra.free_port(),
                           inference_addr="127.0.0.1:1", log_level="WARNING", event_loop="asyncio")
    rt = build(settings)
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(bus.DOCUMENTS.config, subjects=list(bus.DOCUMENTS.subjects))
        # A document that no longer exists: the ingestor drops it (and acks) on the first try.
        item = DocumentIngestRequested(tenant_id="t-lifespan", dataset_id=str(uuid.uuid4()),
                                       document_id=str(uuid.uuid4()), revision=1)
        await js.publish(bus.DOCUMENTS_INGEST, item.model_dump_json().encode())

        await rt.start()

        async def settled():
            info = await js.consumer_info(bus.DOCUMENTS.name, bus.RAG_INGEST.durable)
            done = info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq >= 1
            return info if done else None

        info = await eventually(settled, "rag takes and settles the waiting item")
        # One delivery in all (the consumer's sequence counts redeliveries too): no "still
        # starting" nack, the first delivery found the ingestor built.
        assert info.delivered.consumer_seq == 1
        assert info.config.ack_wait == settings.ingest_ack_wait_s
    finally:
        await rt.stop()
        await nc.close()
        server.stop()
