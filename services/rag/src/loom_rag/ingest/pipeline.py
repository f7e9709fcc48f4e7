"""`Ingestor.ingest`: one document through waiting -> parsing -> splitting -> indexing -> completed.

    load (skip if deleted, stale revision, paused or already completed)
    parsing    raw bytes from the file store -> text (parsers, in a limited child process:
               isolated.py), cleaned
    splitting  text -> chunks (splitter, token-sized per the document's process rule)
    indexing   first, segments of older revisions are dropped; then per batch of chunks:
               embed through inference, then ONE transaction upserts the batch's segments
               (vector + tsvector) and the document's progress
    completed  segments this attempt did not write are dropped, counts recorded

Idempotent: segment ids are uuid5(document, revision, position), so an attempt redelivered
after a crash overwrites the same rows. Bad content raises BadDocument and an unusable
embedding EmbeddingMismatch: the document goes to `error` with the message and the work item
is terminated. Anything else (inference down...) propagates as retryable; on the last delivery
the caller passes `final=True` and the document goes to `error` too, so no job stays stuck.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loom_common.errors import PermanentError
from loom_common.events import DocumentIngestRequested, DocumentProgress, DocumentStatus
from loom_common.logging import get_logger
from loom_rag import metrics
from loom_rag.domain import embedding_space
from loom_rag.domain.errors import BadDocument, EmbeddingMismatch, NotFound
from loom_rag.domain.models import Chunk, Dataset, Document
from loom_rag.domain.ports import Embedder, FileStore, ProgressSink, Tokenizer
from loom_rag.ingest.cleaning import clean
from loom_rag.ingest.isolated import ParseLimits, parse_isolated
from loom_rag.ingest.splitter import split_document
from loom_rag.store import datasets as datasets_store
from loom_rag.store import documents as documents_store
from loom_rag.store import segments as segments_store
from loom_rag.store.tenancy import TenantDb

log = get_logger(__name__)

_DONE = (DocumentStatus.COMPLETED, DocumentStatus.PAUSED)


class Stale(Exception):
    """The document was edited, paused or deleted while we worked: stop quietly."""


@dataclass
class Ingestor:
    db: TenantDb
    files: FileStore
    embedder: Embedder
    tokenizer: Tokenizer
    progress: ProgressSink
    batch_size: int = 64
    # Called after every batch (e.g. to tell JetStream the message is still being worked on).
    heartbeat: Callable[[], Awaitable[None]] | None = None
    parse_limits: ParseLimits = field(default_factory=ParseLimits)

    async def ingest(self, item: DocumentIngestRequested, *, final: bool = False, heartbeat=None) -> None:
        tenant = item.tenant_id
        try:
            async with self.db.transaction(tenant) as conn:
                doc = await documents_store.get(conn, tenant, item.dataset_id, item.document_id)
                dataset = await datasets_store.get(conn, tenant, item.dataset_id)
        except NotFound:
            log.info("document gone; work item dropped", document_id=item.document_id)
            return
        if doc.revision != item.revision or doc.status in _DONE:
            log.info("work item skipped", document_id=doc.id, revision=item.revision,
                     current_revision=doc.revision, status=doc.status)
            return
        try:
            await self._run(dataset, doc, heartbeat or self.heartbeat)
        except Stale:
            log.info("document changed while indexing; stopped", document_id=doc.id)
        except (BadDocument, EmbeddingMismatch) as exc:
            await self._fail(doc, exc.message)
            raise PermanentError(exc.message) from exc
        except PermanentError as exc:
            await self._fail(doc, exc.message)
            raise
        except Exception as exc:
            if final:
                await self._fail(doc, f"gave up after repeated failures: {exc}")
            raise

    async def _run(self, dataset: Dataset, doc: Document, heartbeat) -> None:
        started = time.perf_counter()
        await self._advance(doc, DocumentStatus.PARSING, progress=0.0, error=None)
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
        chunks = await asyncio.to_thread(split_document, text, rule, self.tokenizer)
        total = len(chunks)
        await self._advance(doc, DocumentStatus.INDEXING, progress=0.1, segments_total=total, segments_done=0,
                            tokens=sum(c.tokens for c in chunks))
        async with self.db.transaction(doc.tenant_id) as conn:
            await segments_store.delete_other_revisions(conn, doc.tenant_id, doc.id, doc.revision)

        written: list[str] = []
        for start in range(0, total, self.batch_size):
            batch = chunks[start:start + self.batch_size]
            written.extend(await self._index_batch(dataset, doc, start, batch, total))
            metrics.CHUNKS_INDEXED.inc(len(batch))
            await self._report(doc, DocumentStatus.INDEXING, len(written), total)
            if heartbeat is not None:
                await heartbeat()

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

    async def _index_batch(self, dataset: Dataset, doc: Document, start: int, batch: list[Chunk],
                           total: int) -> list[str]:
        got = await self.embedder.embed(dataset.embedding_model, [c.content for c in batch], tenant_id=doc.tenant_id)
        vectors = embedding_space.check(dataset.embedding_model, dataset.embedding_dim, got, len(batch))
        base_meta = {**doc.metadata, "document_name": doc.name}
        rows = [segments_store.NewSegment(id=segments_store.segment_id(doc.id, doc.revision, start + i + 1),
                                          position=start + i + 1, content=c.content, tokens=c.tokens,
                                          metadata=base_meta, embedding=v, parent_content=c.parent_content)
                for i, (c, v) in enumerate(zip(batch, vectors, strict=True))]
        done = start + len(batch)
        async with self.db.transaction(doc.tenant_id) as conn:
            # Lock the document row first: a concurrent edit or delete either waits for this
            # batch or makes it see a new revision and stop.
            if not await documents_store.advance(conn, doc.tenant_id, doc.id, doc.revision, DocumentStatus.INDEXING,
                                                 segments_done=done, progress=0.1 + 0.9 * done / total):
                raise Stale()
            await segments_store.upsert(conn, tenant_id=doc.tenant_id, dataset_id=doc.dataset_id, document_id=doc.id,
                                        revision=doc.revision, document_enabled=doc.enabled and not doc.archived,
                                        embedding_model=dataset.embedding_model,
                                        text_search_config=dataset.text_search_config, segments=rows)
        return [r.id for r in rows]

    async def _advance(self, doc: Document, status: DocumentStatus, **fields) -> None:
        async with self.db.transaction(doc.tenant_id) as conn:
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
