"""Indexing the chunks of several documents together: one Embed call and one transaction for
the batches that documents being ingested at the same time have ready.

    a document's worker   submits a batch of its chunks (dataset, document, first position)
                          and waits for that batch's segment ids
    the batcher           when a flush slot is free, takes the oldest waiting batch and every
                          other waiting batch of the same tenant and embedding model, up to
                          `max_chunks` chunks and one batch per document; embeds them in one
                          call (inference cuts it into length buckets: engine/embed_batching)
                          and writes all their segments and each document's progress in one
                          transaction (store/segments.upsert_many)
    flush slots           `max_flushes` packs at once, so one pack is embedded (inference's
                          CPU) while the previous one is written (Postgres's)

Tenants never share a pack: a pack is one tenant's transaction, under that tenant's row-level
security, and one Embed call made on its behalf. A document that fails does not fail its
pack-mates: a pack of several documents whose Embed call or transaction fails is tried again
one document at a time, so only the document that causes the error gets it. Errors every
document would meet alone (inference unavailable, a lost connection) are not retried here:
each waiting document gets them, and its work item is redelivered as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loom_common.errors import RetryableError
from loom_common.events import DocumentStatus
from loom_rag.domain import embedding_space
from loom_rag.domain.models import Chunk, Dataset, Document
from loom_rag.domain.ports import Embeddings
from loom_rag.store import documents as documents_store
from loom_rag.store import segments as segments_store
from loom_rag.store.tenancy import TenantDb, connection_lost

Embed = Callable[[str, list[str], str], Awaitable[Embeddings]]  # (model, texts, tenant_id)

# The transactions of a document in progress (its state changes, its packs) commit without
# waiting for the WAL flush: if Postgres crashes and loses the last of them, the work item,
# not yet acked, is redelivered and redoes them (segment ids make that idempotent). The
# transaction that completes a document waits for its flush as usual, and so for every
# earlier one (WAL is flushed in order) before the message is acked.
IN_PROGRESS = {"synchronous_commit": "off"}


class Stale(Exception):
    """The document was edited, paused or deleted while we worked: stop quietly."""


@dataclass
class Batch:
    """A run of one document's chunks, positions `start + 1 ...`, out of `total`."""

    dataset: Dataset
    doc: Document
    start: int
    chunks: list[Chunk]
    total: int
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def key(self) -> tuple[str, str]:
        return self.doc.tenant_id, self.dataset.embedding_model


def _shared(exc: BaseException) -> bool:
    """An error the pack's documents would each meet alone: not worth retrying one by one."""
    return isinstance(exc, (RetryableError, asyncio.TimeoutError)) or connection_lost(exc)


class IndexBatcher:
    def __init__(self, db: TenantDb, embed: Embed, *, max_chunks: int = 64, max_flushes: int = 2) -> None:
        self.db, self.embed = db, embed
        self.max_chunks, self.max_flushes = max_chunks, max_flushes
        self._waiting: list[Batch] = []
        self._running = 0
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self.packs = 0  # Embed calls made for packs (tests, metrics)

    async def index(self, dataset: Dataset, doc: Document, start: int, chunks: list[Chunk], total: int) -> list[str]:
        """Embed and write one batch of `doc`'s chunks; its segment ids, or this document's error."""
        batch = Batch(dataset, doc, start, chunks, total)
        self._waiting.append(batch)
        self._pump()
        try:
            return await asyncio.shield(batch.done)
        except asyncio.CancelledError:
            if not batch.done.done():  # still waiting: it will not be flushed
                with contextlib.suppress(ValueError):
                    self._waiting.remove(batch)
            raise

    def _pump(self) -> None:
        while self._waiting and self._running < self.max_flushes and not self._closed:
            pack = self._take()
            self._running += 1
            task = asyncio.create_task(self._flush(pack))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._running -= 1
        self._pump()

    def _take(self) -> list[Batch]:
        """The oldest waiting batch and the waiting batches that may share its pack."""
        first = self._waiting.pop(0)
        pack, size, docs = [first], len(first.chunks), {first.doc.id}
        for b in list(self._waiting):
            if b.key == first.key and b.doc.id not in docs and size + len(b.chunks) <= self.max_chunks:
                self._waiting.remove(b)
                pack.append(b)
                size += len(b.chunks)
                docs.add(b.doc.id)  # one batch per document: a segment id once per statement
        return pack

    async def _flush(self, pack: list[Batch]) -> None:
        try:
            results = await self._run(pack)
        except BaseException as exc:  # handed to every waiting document
            if len(pack) > 1 and not _shared(exc) and not isinstance(exc, asyncio.CancelledError):
                for b in pack:  # find the document that causes it; the others go through
                    await self._flush([b])
                return
            results = [exc] * len(pack)
        for b, result in zip(pack, results, strict=True):
            if b.done.done():
                continue
            if isinstance(result, asyncio.CancelledError):  # the batcher is closing
                b.done.cancel()
            elif isinstance(result, BaseException):
                b.done.set_exception(result)
            else:
                b.done.set_result(result)

    async def _run(self, pack: list[Batch]) -> list[list[str] | BaseException]:
        tenant, model = pack[0].key
        texts = [c.content for b in pack for c in b.chunks]
        got = await self.embed(model, texts, tenant)
        self.packs += 1
        vectors = embedding_space.check(model, pack[0].dataset.embedding_dim, got, len(texts))
        writes: list[tuple[Batch, list[segments_store.NewSegment]]] = []
        offsets, offset = {}, 0
        for b in pack:
            offsets[id(b)], offset = offset, offset + len(b.chunks)
        # Documents in id order: two packs (or a pack and an edit) lock their rows in one order.
        for b in sorted(pack, key=lambda b: b.doc.id):
            vs = vectors[offsets[id(b)]:offsets[id(b)] + len(b.chunks)]
            meta = {**b.doc.metadata, "document_name": b.doc.name}
            writes.append((b, [segments_store.NewSegment(
                id=segments_store.segment_id(b.doc.id, b.doc.revision, b.start + i + 1), position=b.start + i + 1,
                content=c.content, tokens=c.tokens, metadata=meta, embedding=v, parent_content=c.parent_content)
                for i, (c, v) in enumerate(zip(b.chunks, vs, strict=True))]))
        results: dict[int, list[str] | BaseException] = {}
        live: list[segments_store.DocumentSegments] = []
        async with self.db.transaction(tenant, **IN_PROGRESS) as conn:
            for b, rows in writes:
                done = b.start + len(b.chunks)
                # Lock each document row first: a concurrent edit or delete either waits for
                # this transaction or makes this batch see a new revision and stop.
                if not await documents_store.advance(conn, tenant, b.doc.id, b.doc.revision, DocumentStatus.INDEXING,
                                                     segments_done=done, progress=0.1 + 0.9 * done / b.total):
                    results[id(b)] = Stale()
                    continue
                live.append(segments_store.DocumentSegments(
                    b.doc.dataset_id, b.doc.id, b.doc.revision, b.doc.enabled and not b.doc.archived,
                    b.dataset.text_search_config, rows))
                results[id(b)] = [r.id for r in rows]
            await segments_store.upsert_many(conn, tenant_id=tenant, embedding_model=model, documents=live)
        return [results[id(b)] for b in pack]

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
