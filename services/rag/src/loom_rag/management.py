"""Datasets, documents and segments as the knowledge API sees them (create, list, edit,
enable/disable, delete), independent of the transport.

Documents are stored raw in the file store, recorded as `waiting` and queued; the ingestion
worker does the rest. Editing a document's content or process rule bumps its revision and
queues it again (the old revision's work item is then skipped). Disabling a document that is
still being indexed pauses it; enabling it again re-queues it. Segments edited by hand are
re-embedded at once, with the dataset's model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from loom_common.events import DocumentStatus
from loom_common.ids import new_id
from loom_rag.domain import embedding_space
from loom_rag.domain.chunking import ChunkingConfig
from loom_rag.domain.errors import InvalidArgument
from loom_rag.domain.models import Dataset, Document, Page, SearchMethod, Segment
from loom_rag.domain.ports import Embedder, FileStore, IngestQueue, ModelCatalog, Tokenizer
from loom_rag.domain.validation import paging, uuid_
from loom_rag.ingest.parsers import file_kind
from loom_rag.storage.keys import document_key
from loom_rag.store import datasets as datasets_store
from loom_rag.store import documents as documents_store
from loom_rag.store import segments as segments_store
from loom_rag.store.tenancy import TenantDb

_IN_FLIGHT = (DocumentStatus.WAITING, DocumentStatus.PARSING, DocumentStatus.SPLITTING, DocumentStatus.INDEXING)


@dataclass
class Source:
    """New content for a document: text, or a file's bytes."""

    text: str | None = None
    file: bytes | None = None
    mime_type: str = ""


@dataclass
class Management:
    db: TenantDb
    files: FileStore
    queue: IngestQueue
    embedder: Embedder
    catalog: ModelCatalog
    tokenizer: Tokenizer
    default_embedding_model: str
    max_file_bytes: int = 50 * 1024 * 1024

    # ---- datasets ----------------------------------------------------------------------------

    async def create_dataset(self, tenant_id: str, *, name: str, description: str = "", embedding_model: str = "",
                             embedding_dim: int = 0, process_rule: ChunkingConfig | None = None,
                             search_method: SearchMethod | None = None, text_search_config: str = "") -> Dataset:
        name = name.strip()
        if not name:
            raise InvalidArgument("name", "is required")
        if len(name) > 200:
            raise InvalidArgument("name", "at most 200 characters")
        model = embedding_model or self.default_embedding_model
        dim = embedding_dim or await self.catalog.embedding_dimension(model)
        if not 1 <= dim <= 2000:
            raise InvalidArgument("embedding_dimension", "must be between 1 and 2000 (pgvector's HNSW limit)")
        ts_config = text_search_config or "english"
        async with self.db.transaction(tenant_id) as conn:
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = $1)", ts_config):
                raise InvalidArgument("text_search_config", f"unknown text search configuration {ts_config!r}")
        await datasets_store.ensure_vector_index(self.db.pool, dim)
        async with self.db.transaction(tenant_id) as conn:
            return await datasets_store.create(
                conn, id=new_id(), tenant_id=tenant_id, name=name, description=description, embedding_model=model,
                embedding_dim=dim, process_rule=process_rule or ChunkingConfig(),
                search_method=search_method or SearchMethod.HYBRID, text_search_config=ts_config)

    async def get_dataset(self, tenant_id: str, dataset_id: str) -> Dataset:
        async with self.db.transaction(tenant_id) as conn:
            return await datasets_store.get(conn, tenant_id, uuid_("dataset_id", dataset_id))

    async def list_datasets(self, tenant_id: str, *, keyword: str = "", page: int = 1, limit: int = 20,
                            ids: list[str] | None = None) -> Page:
        """`ids`: only those datasets (a tag's, from the gateway); None: all of the tenant's."""
        page, limit, offset = paging(page, limit)
        if ids is not None and len(ids) > 1000:
            raise InvalidArgument("ids", "at most 1000 datasets")
        only = [uuid_("ids", d) for d in ids] if ids is not None else None
        async with self.db.transaction(tenant_id) as conn:
            items, total = await datasets_store.list_(conn, tenant_id, keyword=keyword, offset=offset, limit=limit,
                                                      ids=only)
        return Page(items, total, page, limit)

    async def update_dataset(self, tenant_id: str, dataset_id: str, *, name: str | None = None,
                             description: str | None = None, process_rule: ChunkingConfig | None = None,
                             search_method: SearchMethod | None = None) -> Dataset:
        if name is not None and not name.strip():
            raise InvalidArgument("name", "must not be empty")
        async with self.db.transaction(tenant_id) as conn:
            return await datasets_store.update(conn, tenant_id, uuid_("dataset_id", dataset_id),
                                               name=name.strip() if name else None, description=description,
                                               process_rule=process_rule, search_method=search_method)

    async def delete_dataset(self, tenant_id: str, dataset_id: str) -> None:
        dataset_id = uuid_("dataset_id", dataset_id)
        async with self.db.transaction(tenant_id) as conn:
            await datasets_store.delete(conn, tenant_id, dataset_id)  # documents, segments cascade
        await self.files.delete_prefix(document_key(tenant_id, dataset_id, "x", 0, "x").rsplit("/", 2)[0])

    # ---- documents ---------------------------------------------------------------------------

    async def create_document(self, tenant_id: str, dataset_id: str, *, name: str, source: Source,
                              process_rule: ChunkingConfig | None = None,
                              metadata: dict[str, Any] | None = None) -> Document:
        dataset = await self.get_dataset(tenant_id, dataset_id)
        kind, data, mime = self._content(name, source)
        doc_id = new_id()
        key = document_key(tenant_id, dataset.id, doc_id, 1, name)
        await self.files.put(key, data)
        async with self.db.transaction(tenant_id) as conn:
            doc = await documents_store.create(
                conn, id=doc_id, tenant_id=tenant_id, dataset_id=dataset.id, name=name.strip(),
                data_source_type=kind, file_key=key, mime_type=mime, size_bytes=len(data),
                process_rule=process_rule or dataset.process_rule, metadata=metadata or {})
        await self.queue.enqueue(tenant_id=tenant_id, dataset_id=dataset.id, document_id=doc.id, revision=doc.revision)
        return doc

    def _content(self, name: str, source: Source) -> tuple[str, bytes, str]:
        if not name.strip():
            raise InvalidArgument("name", "is required")
        if source.file is not None:
            try:
                file_kind(name, source.mime_type)
            except Exception as exc:
                raise InvalidArgument("name", str(exc)) from None
            if not source.file:
                raise InvalidArgument("file", "is empty")
            data, kind, mime = source.file, "upload_file", source.mime_type
        elif source.text is not None:
            if not source.text.strip():
                raise InvalidArgument("text", "is empty")
            data, kind, mime = source.text.encode(), "text", "text/plain"
        else:
            raise InvalidArgument("text", "give text or a file")
        if len(data) > self.max_file_bytes:
            raise InvalidArgument("file", f"larger than {self.max_file_bytes} bytes")
        return kind, data, mime

    async def get_document(self, tenant_id: str, dataset_id: str, document_id: str) -> Document:
        async with self.db.transaction(tenant_id) as conn:
            return await documents_store.get(conn, tenant_id, uuid_("dataset_id", dataset_id),
                                             uuid_("document_id", document_id))

    async def list_documents(self, tenant_id: str, dataset_id: str, *, keyword: str = "", page: int = 1,
                             limit: int = 20) -> Page:
        page, limit, offset = paging(page, limit)
        dataset = await self.get_dataset(tenant_id, dataset_id)
        async with self.db.transaction(tenant_id) as conn:
            items, total = await documents_store.list_(conn, tenant_id, dataset.id, keyword=keyword, offset=offset,
                                                       limit=limit)
        return Page(items, total, page, limit)

    async def update_document(self, tenant_id: str, dataset_id: str, document_id: str, *, name: str | None = None,
                              source: Source | None = None, process_rule: ChunkingConfig | None = None,
                              metadata: dict[str, Any] | None = None) -> Document:
        doc = await self.get_document(tenant_id, dataset_id, document_id)
        if name is not None and not name.strip():
            raise InvalidArgument("name", "must not be empty")
        revision = None
        if source is not None or process_rule is not None:
            new_name = (name or doc.name).strip()
            if source is not None:
                kind, data, mime = self._content(new_name, source)
                key = document_key(tenant_id, doc.dataset_id, doc.id, doc.revision + 1, new_name)
                await self.files.put(key, data)
            else:
                kind, key, mime, data = doc.data_source_type, doc.file_key, doc.mime_type, b""
            async with self.db.transaction(tenant_id) as conn:
                locked = await documents_store.get(conn, tenant_id, doc.dataset_id, doc.id, for_update=True)
                await documents_store.update_meta(conn, locked, name=name, metadata=metadata)
                revision = await documents_store.new_revision(
                    conn, locked, file_key=key, mime_type=mime, size_bytes=len(data) if source else doc.size_bytes,
                    data_source_type=kind, process_rule=process_rule or doc.process_rule)
            if source is not None and doc.file_key != key:
                with contextlib.suppress(Exception):
                    await self.files.delete(doc.file_key)
            await self.queue.enqueue(tenant_id=tenant_id, dataset_id=doc.dataset_id, document_id=doc.id,
                                     revision=revision)
        elif name is not None or metadata is not None:
            async with self.db.transaction(tenant_id) as conn:
                await documents_store.update_meta(conn, doc, name=name, metadata=metadata)
        return await self.get_document(tenant_id, doc.dataset_id, doc.id)

    async def delete_document(self, tenant_id: str, dataset_id: str, document_id: str) -> None:
        async with self.db.transaction(tenant_id) as conn:
            doc = await documents_store.delete(conn, tenant_id, uuid_("dataset_id", dataset_id),
                                               uuid_("document_id", document_id))
        await self.files.delete_prefix(doc.file_key.rsplit("/", 1)[0])

    async def set_documents_enabled(self, tenant_id: str, dataset_id: str, document_ids: list[str],
                                    enabled: bool) -> list[Document]:
        if not document_ids:
            raise InvalidArgument("document_ids", "name at least one document")
        ids = [uuid_("document_ids", d) for d in document_ids]
        dataset_id = uuid_("dataset_id", dataset_id)
        requeue: list[Document] = []
        async with self.db.transaction(tenant_id) as conn:
            docs = await documents_store.set_enabled(conn, tenant_id, dataset_id, ids, enabled)
            for doc in docs:
                if not enabled and doc.status in _IN_FLIGHT:
                    await conn.execute("UPDATE documents SET status = 'paused' WHERE tenant_id = $1 AND id = $2::uuid",
                                       tenant_id, doc.id)
                elif enabled and doc.status == DocumentStatus.PAUSED:
                    await conn.execute("UPDATE documents SET status = 'waiting' WHERE tenant_id = $1 "
                                       "AND id = $2::uuid", tenant_id, doc.id)
                    requeue.append(doc)
        for doc in requeue:
            await self.queue.enqueue(tenant_id=tenant_id, dataset_id=doc.dataset_id, document_id=doc.id,
                                     revision=doc.revision)
        return [await self.get_document(tenant_id, dataset_id, d) for d in ids]

    async def set_documents_archived(self, tenant_id: str, dataset_id: str, document_ids: list[str],
                                     archived: bool) -> list[Document]:
        """Dify's archive / un_archive: an archived document is not retrieved; its `enabled` and
        its indexing are left as they are."""
        if not document_ids:
            raise InvalidArgument("document_ids", "name at least one document")
        ids = [uuid_("document_ids", d) for d in document_ids]
        dataset_id = uuid_("dataset_id", dataset_id)
        async with self.db.transaction(tenant_id) as conn:
            await documents_store.set_archived(conn, tenant_id, dataset_id, ids, archived)
        return [await self.get_document(tenant_id, dataset_id, d) for d in ids]

    # ---- segments ----------------------------------------------------------------------------

    async def list_segments(self, tenant_id: str, dataset_id: str, document_id: str, *, keyword: str = "",
                            enabled: bool | None = None, page: int = 1, limit: int = 20,
                            children_of: str | None = None) -> Page:
        """`children_of` (a segment of a parent-child document): only the children of its parent."""
        page, limit, offset = paging(page, limit)
        doc = await self.get_document(tenant_id, dataset_id, document_id)
        async with self.db.transaction(tenant_id) as conn:
            parent = await self._parent(conn, tenant_id, doc.id, children_of) if children_of else None
            items, total = await segments_store.list_(conn, tenant_id, doc.id, keyword=keyword, enabled=enabled,
                                                      offset=offset, limit=limit, parent_content=parent)
        return Page(items, total, page, limit)

    async def _parent(self, conn, tenant_id: str, document_id: str, segment_id: str) -> str:
        seg = await segments_store.get(conn, tenant_id, document_id, uuid_("children_of", segment_id))
        if seg.parent_content is None:
            raise InvalidArgument("children_of", "the segment is not a child chunk (its document is not parent-child)")
        return seg.parent_content

    async def create_segments(self, tenant_id: str, dataset_id: str, document_id: str,
                              items: list[tuple[str, dict[str, Any] | None]],
                              children_of: str | None = None) -> list[Segment]:
        """`children_of` (a child chunk): the new segments are children of the same parent."""
        if not items:
            raise InvalidArgument("segments", "give at least one segment")
        if any(not content.strip() for content, _ in items):
            raise InvalidArgument("segments.content", "must not be empty")
        doc = await self.get_document(tenant_id, dataset_id, document_id)
        dataset = await self.get_dataset(tenant_id, doc.dataset_id)
        contents = [c for c, _ in items]
        vectors = await self._embed(dataset, contents, tenant_id)
        counts = self.tokenizer.count(contents)
        async with self.db.transaction(tenant_id) as conn:
            parent = await self._parent(conn, tenant_id, doc.id, children_of) if children_of else None
            first = await segments_store.next_position(conn, tenant_id, doc.id)
            rows = [segments_store.NewSegment(id=new_id(), position=first + i, content=c, tokens=n,
                                              metadata={**doc.metadata, "document_name": doc.name, **(meta or {})},
                                              embedding=v, parent_content=parent)
                    for i, ((c, meta), n, v) in enumerate(zip(items, counts, vectors, strict=True))]
            await segments_store.upsert(conn, tenant_id=tenant_id, dataset_id=doc.dataset_id, document_id=doc.id,
                                        revision=0, document_enabled=doc.enabled and not doc.archived,
                                        embedding_model=dataset.embedding_model,
                                        text_search_config=dataset.text_search_config, segments=rows)
            return [await segments_store.get(conn, tenant_id, doc.id, r.id) for r in rows]

    async def get_segment(self, tenant_id: str, dataset_id: str, document_id: str, segment_id: str) -> Segment:
        doc = await self.get_document(tenant_id, dataset_id, document_id)
        async with self.db.transaction(tenant_id) as conn:
            return await segments_store.get(conn, tenant_id, doc.id, uuid_("segment_id", segment_id))

    async def update_segment(self, tenant_id: str, dataset_id: str, document_id: str, segment_id: str, *,
                             content: str | None = None, enabled: bool | None = None,
                             metadata: dict[str, Any] | None = None) -> Segment:
        doc = await self.get_document(tenant_id, dataset_id, document_id)
        dataset = await self.get_dataset(tenant_id, doc.dataset_id)
        if content is not None and not content.strip():
            raise InvalidArgument("content", "must not be empty")
        vector, tokens = None, None
        if content is not None:
            vector = (await self._embed(dataset, [content], tenant_id))[0]
            tokens = self.tokenizer.count([content])[0]
        async with self.db.transaction(tenant_id) as conn:
            seg = await segments_store.get(conn, tenant_id, doc.id, uuid_("segment_id", segment_id))
            return await segments_store.update(conn, seg, content=content, tokens=tokens, embedding=vector,
                                               enabled=enabled, metadata=metadata,
                                               text_search_config=dataset.text_search_config)

    async def delete_segment(self, tenant_id: str, dataset_id: str, document_id: str, segment_id: str) -> None:
        doc = await self.get_document(tenant_id, dataset_id, document_id)
        async with self.db.transaction(tenant_id) as conn:
            await segments_store.delete(conn, tenant_id, doc.id, uuid_("segment_id", segment_id))

    async def _embed(self, dataset: Dataset, texts: list[str], tenant_id: str) -> list[list[float]]:
        got = await self.embedder.embed(dataset.embedding_model, texts, tenant_id=tenant_id)
        return embedding_space.check(dataset.embedding_model, dataset.embedding_dim, got, len(texts))
