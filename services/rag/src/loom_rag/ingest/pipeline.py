"""`Ingestor.ingest`: one document through waiting -> parsing -> splitting -> indexing -> completed.

    start      one transaction: load, skip if deleted, stale revision, paused or already
               completed, else -> parsing
    parsing    raw bytes from the file store -> text (parsers, in a limited child process:
               isolated.py), cleaned                                   } at most
    splitting  text -> chunks (splitter, token-sized per the document's  } parse_concurrency
               process rule)                                            } documents at once
    indexing   one transaction: -> indexing, segments of older revisions dropped; then per
               batch of chunks, through the IndexBatcher (batching.py): embedded and written
               together with the batches other documents have ready at the same time (one
               Embed call and ONE transaction: segments, vector + tsvector, and each
               document's progress)
    completed  segments this attempt did not write are dropped, counts recorded

Idempotent: segment ids are uuid5(document, revision, position), so an attempt redelivered
after a crash overwrites the same rows. Bad content raises BadDocument and an unusable
embedding EmbeddingMismatch: the document goes to `error` with the message and the work item
is terminated. Anything else (inference down...) propagates as retryable; on the last delivery
the caller passes `final=True` and the document goes to `error` too, so no job stays stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from loom_common.errors import PermanentError
from loom_common.events import DocumentIngestRequested, DocumentProgress, DocumentStatus
from loom_common.logging import get_logger
from loom_rag import metrics
from loom_rag.domain.errors import BadDocument, EmbeddingMismatch, NotFound
from loom_rag.domain.models import Chunk, Dataset, Document
from loom_rag.domain.ports import Embedder, Embeddings, FileStore, ProgressSink, Tokenizer
from loom_rag.ingest.batching import IN_PROGRESS, IndexBatcher, Stale
from loom_rag.ingest.cleaning import clean
from loom_rag.ingest.isolated import ParseLimits, parse_isolated
from loom_rag.ingest.splitter import split_document
from loom_rag.store import datasets as datasets_store
from loom_rag.store import documents as documents_store
from loom_rag.store import segments as segments_store
from loom_rag.store.tenancy import TenantDb

log = get_logger(__name__)

_DONE = (DocumentStatus.COMPLETED, DocumentStatus.PAUSED)

__all__ = ["Ingestor", "Stale"]


@dataclass
class Ingestor:
    db: TenantDb
    files: FileStore
    embedder: Embedder
    tokenizer: Tokenizer
    progress: ProgressSink
    batch_size: int = 64          # chunks of one document per batch (a document's progress step)
    # Called after every batch (e.g. to tell JetStream the message is still being worked on).
    heartbeat: Callable[[], Awaitable[None]] | None = None
    parse_limits: ParseLimits = field(default_factory=ParseLimits)
    # Parsing (a child process of up to parse_limits.memory_mb each), cleaning and splitting are
    # bounded apart from indexing, so more documents can wait on embedding than are parsed.
    parse_concurrency: int = 2
    pack_chunks: int = 64         # chunks of several documents per Embed call and transaction
    # While a document waits (for a parse slot, for its batch's pack) its message is marked in
    # progress this often; keep it well under the consumer's ack wait.
    heartbeat_every_s: float = 20.0

    def __post_init__(self) -> None:
        self.batcher = IndexBatcher(self.db, self._embed, max_chunks=self.pack_chunks)
        self._parsing = asyncio.Semaphore(self.parse_concurrency)

    async def close(self) -> None:
        await self.batcher.close()

    async def _embed(self, model: str, texts: list[str], tenant_id: str) -> Embeddings:
        return await self.embedder.embed(model, texts, tenant_id=tenant_id)

    async def ingest(self, item: DocumentIngestRequested, *, final: bool = False, heartbeat=None) -> None:
        beat = heartbeat or self.heartbeat
        doc: Document | None = None
        try:
            async with self._kept_alive(beat):
                await self._parsing.acquire()
            try:
                started = await self._start(item)
                if started is None:
                    return
                dataset, doc = started
                clock = time.perf_counter()
                chunks = await self._prepare(doc)
            finally:
                self._parsing.release()
            await self._index(dataset, doc, chunks, beat, clock)
        except Stale:
            log.info("document changed while indexing; stopped", document_id=item.document_id)
        except (BadDocument, EmbeddingMismatch) as exc:
            if doc is not None:
                await self._fail(doc, exc.message)
            raise PermanentError(exc.message) from exc
        except PermanentError as exc:
            if doc is not None:
                await self._fail(doc, exc.message)
            raise
        except Exception as exc:
            if final and doc is not None:
                await self._fail(doc, f"gave up after repeated failures: {exc}")
            raise

    async def _start(self, item: DocumentIngestRequested) -> tuple[Dataset, Document] | None:
        """Load the document and move it to parsing in one transaction; None: nothing to do."""
        tenant = item.tenant_id
        try:
            async with self.db.transaction(tenant, **IN_PROGRESS) as conn:
                doc = await documents_store.get(conn, tenant, item.dataset_id, item.document_id)
                dataset = await datasets_store.get(conn, tenant, item.dataset_id)
                if doc.revision != item.revision or doc.status in _DONE:
                    log.info("work item skipped", document_id=doc.id, revision=item.revision,
                             current_revision=doc.revision, status=doc.status)
                    return None
                if not await documents_store.advance(conn, tenant, doc.id, doc.revision, DocumentStatus.PARSING,
                                                     progress=0.0, error=None):
                    raise Stale()
        except NotFound:
            log.info("document gone; work item dropped", document_id=item.document_id)
            return None
        await self._report(doc, DocumentStatus.PARSING, 0, 0, progress=0.0)
        return dataset, doc

    async def _prepare(self, doc: Document) -> list[Chunk]:
        """parsing and splitting: the document's chunks."""
        raw = await self.files.get(doc.file_key)
        if doc.data_source_type == "upload_file":
            text = await parse_isolated(raw, doc.name, doc.mime_type, self.parse_limits)
        else:  # text typed through the API, bounded by the request size
            text = raw.decode()
            if len(text) > self.parse_limits.max_text_chars:
                raise BadDocument(f"the text is longer than {self.parse_limits.max_text_chars} characters")
        rule = doc.process_rule
        # Cleaning and splitting up to parse_max_text_chars of text is seconds of CPU (~1 s per
        # million characters here): in a thread, so retrieval on the event loop keeps its turns.
        # The tokenizer's settings are fixed at load, which makes its encode calls thread-safe.
        text = await asyncio.to_thread(clean, text, remove_extra_spaces=rule.remove_extra_spaces,
                                       remove_urls_emails=rule.remove_urls_emails)
        if not text:
            raise BadDocument("the document has no text")
        await self._advance(doc, DocumentStatus.SPLITTING, progress=0.05, word_count=len(text.split()))
        return await asyncio.to_thread(split_document, text, rule, self.tokenizer)

    async def _index(self, dataset: Dataset, doc: Document, chunks: list[Chunk], beat, started: float) -> None:
        total = len(chunks)
        async with self.db.transaction(doc.tenant_id, **IN_PROGRESS) as conn:
            if not await documents_store.advance(conn, doc.tenant_id, doc.id, doc.revision, DocumentStatus.INDEXING,
                                                 progress=0.1, segments_total=total, segments_done=0,
                                                 tokens=sum(c.tokens for c in chunks)):
                raise Stale()
            await segments_store.delete_other_revisions(conn, doc.tenant_id, doc.id, doc.revision)
        await self._report(doc, DocumentStatus.INDEXING, 0, total, progress=0.1)

        written: list[str] = []
        for start in range(0, total, self.batch_size):
            batch = chunks[start:start + self.batch_size]
            async with self._kept_alive(beat):  # the pack may wait for others ahead of it
                written.extend(await self.batcher.index(dataset, doc, start, batch, total))
            metrics.CHUNKS_INDEXED.inc(len(batch))
            await self._report(doc, DocumentStatus.INDEXING, len(written), total)
            if beat is not None:
                await beat()

        async with self.db.transaction(doc.tenant_id) as conn:
            await segments_store.delete_unlisted(conn, doc.tenant_id, doc.id, doc.revision, written)
            if not await documents_store.advance(conn, doc.tenant_id, doc.id, doc.revision, DocumentStatus.COMPLETED,
                                                 progress=1.0, segments_done=total):
                raise Stale()
        elapsed = time.perf_counter() - started
        metrics.DOCUMENTS_INGESTED.labels(status="completed").inc()
        metrics.CHUNKS_PER_SECOND.set(total / elapsed if elapsed > 0 else 0.0)
        await self._report(doc, DocumentStatus.COMPLETED, total, total)
        log.info("document indexed", document_id=doc.id, segments=total, seconds=round(elapsed, 3))

    @contextlib.asynccontextmanager
    async def _kept_alive(self, beat) -> AsyncIterator[None]:
        """Mark the message in progress every heartbeat_every_s while the body waits."""
        if beat is None:
            yield
            return

        async def keep() -> None:
            while True:
                await asyncio.sleep(self.heartbeat_every_s)
                try:
                    await beat()
                except Exception as exc:  # the next batch's heartbeat tries again
                    log.warning("heartbeat failed", error=repr(exc))

        task = asyncio.create_task(keep())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _advance(self, doc: Document, status: DocumentStatus, **fields) -> None:
        async with self.db.transaction(doc.tenant_id, **IN_PROGRESS) as conn:
            if not await documents_store.advance(conn, doc.tenant_id, doc.id, doc.revision, status, **fields):
                raise Stale()
        await self._report(doc, status, fields.get("segments_done", 0), fields.get("segments_total", 0),
                           progress=fields.get("progress"))

    async def _fail(self, doc: Document, message: str) -> None:
        log.warning("document failed", document_id=doc.id, error=message)
        async with self.db.transaction(doc.tenant_id) as conn:
            changed = await documents_store.advance(conn, doc.tenant_id, doc.id, doc.revision, DocumentStatus.ERROR,
                                                    error=message[:2000])
        if changed:
            metrics.DOCUMENTS_INGESTED.labels(status="error").inc()
            await self._report(doc, DocumentStatus.ERROR, 0, 0, error=message)

    async def _report(self, doc: Document, status: DocumentStatus, done: int, total: int, *,
                      progress: float | None = None, error: str | None = None) -> None:
        if progress is None:
            progress = 1.0 if status == DocumentStatus.COMPLETED else (0.1 + 0.9 * done / total if total else 0.0)
        try:
            await self.progress.report(DocumentProgress(
                tenant_id=doc.tenant_id, dataset_id=doc.dataset_id, document_id=doc.id, status=status,
                progress=min(1.0, progress), segments_done=done, segments_total=total, error=error))
        except Exception as exc:  # progress is advisory; the document row is the truth
            log.warning("progress event not published", document_id=doc.id, error=repr(exc))
