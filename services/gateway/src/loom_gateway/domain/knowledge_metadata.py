"""Dataset metadata (Dify's metadata API): the fields a dataset declares, their values on its
documents, and the built-in fields switch.

Fields (name, type string | number | time) are the gateway's rows; VALUES live in each
document's metadata in the rag service, which copies them onto the document's chunks, so that
retrieval filters on them (`metadata_filtering_conditions`). Renaming or deleting a field
rewrites the documents that carry it. Built-in fields (document_name, uploader, upload_date,
last_update_date, source), when switched on, are written onto the dataset's documents at that
moment; document_name is always filterable (chunks carry it). The tables are
store/knowledge_metadata.py's.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from loom_gateway.domain.errors import BadRequest, Conflict
from loom_gateway.store.knowledge_metadata import MetadataFields

BUILT_IN: dict[str, str] = {"document_name": "string", "uploader": "string", "upload_date": "time",
                            "last_update_date": "time", "source": "string"}
TYPES = ("string", "number", "time")
MAX_FIELDS = 100
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,254}$")


class Documents(Protocol):
    """What this needs of the rag client (clients/rag.py)."""

    async def get_dataset(self, t: str, dataset_id: str) -> dict: ...
    def documents(self, t: str, dataset_id: str) -> AsyncIterator[Any]: ...
    async def get_document(self, t: str, dataset_id: str, document_id: str) -> Any: ...
    async def set_document_metadata(self, t: str, dataset_id: str, document_id: str, metadata: dict) -> None: ...


def field_body(r: Mapping[str, Any]) -> dict:
    return {"id": r["id"], "name": r["name"], "type": r["type"]}


def check_name(name: str, field: str = "name") -> str:
    if not _NAME.match(name):
        raise BadRequest("a metadata name is lowercase letters, digits and underscores, starting with a letter",
                         field=field)
    if name in BUILT_IN:
        raise BadRequest(f"{name!r} is a built-in field", field=field)
    return name


def check_value(kind: str, value: Any, field: str) -> Any:
    """A value fit for a field of `kind` (numbers and times may come as text, as Dify's form sends)."""
    if value is None:
        return None
    if kind == "string":
        if not isinstance(value, str) or len(value) > 1000:
            raise BadRequest("a string field's value is text of at most 1000 characters", field=field)
        return value
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise BadRequest(f"a {kind} field's value is a number", field=field) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"a {kind} field's value is a number", field=field)
    if kind == "time":
        return int(value)  # unix seconds
    return value


def _meta(doc: Any) -> dict:
    return json.loads(doc.metadata_json) if doc.metadata_json else {}


class KnowledgeMetadata:
    def __init__(self, fields: MetadataFields, rag: Documents):
        self.fields, self.rag = fields, rag

    async def _fields(self, t: str, ds: str) -> list[Mapping[str, Any]]:
        return await self.fields.list(t, ds)

    async def create(self, t: str, ds: str, name: str, kind: str) -> dict:
        await self.rag.get_dataset(t, ds)  # 404 unless the workspace's
        check_name(name)
        if kind not in TYPES:
            raise BadRequest(f"type must be one of {TYPES}", field="type")
        if len(await self._fields(t, ds)) >= MAX_FIELDS:
            raise Conflict(f"a dataset declares at most {MAX_FIELDS} metadata fields", code="metadata_limit")
        return field_body(await self.fields.create(t, ds, name, kind))

    async def listing(self, t: str, ds: str) -> dict:
        """Dify's GET .../metadata: the fields with how many documents carry each."""
        await self.rag.get_dataset(t, ds)
        fields = await self._fields(t, ds)
        counts = dict.fromkeys((f["name"] for f in fields), 0)
        if fields:
            async for doc in self.rag.documents(t, ds):
                for name in _meta(doc):
                    if name in counts:
                        counts[name] += 1
        return {"doc_metadata": [{**field_body(f), "count": counts[f["name"]]} for f in fields],
                "built_in_field_enabled": await self.built_in_enabled(t, ds)}

    async def built_in_enabled(self, t: str, ds: str) -> bool:
        return await self.fields.built_in_enabled(t, ds)

    async def _rewrite(self, t: str, ds: str, change) -> None:
        """Apply `change(metadata) -> new metadata | None` to every document (None: unchanged)."""
        async for doc in self.rag.documents(t, ds):
            new = change(_meta(doc))
            if new is not None:
                await self.rag.set_document_metadata(t, ds, doc.id, new)

    async def rename(self, t: str, ds: str, field_id: str, name: str) -> dict:
        await self.rag.get_dataset(t, ds)
        check_name(name)
        old = await self.fields.get(t, ds, field_id)
        row = await self.fields.rename(t, ds, field_id, name)
        if old["name"] != name:
            await self._rewrite(t, ds, lambda m: ({(name if k == old["name"] else k): v for k, v in m.items()}
                                                  if old["name"] in m else None))
        return field_body(row)

    async def delete(self, t: str, ds: str, field_id: str) -> None:
        await self.rag.get_dataset(t, ds)
        old = await self.fields.get(t, ds, field_id)
        await self.fields.delete(field_id)
        await self._rewrite(t, ds, lambda m: {k: v for k, v in m.items() if k != old["name"]}
                            if old["name"] in m else None)

    async def set_built_in(self, t: str, ds: str, enabled: bool) -> None:
        await self.rag.get_dataset(t, ds)
        await self.fields.set_built_in(t, ds, enabled)
        async for doc in self.rag.documents(t, ds):
            m = {k: v for k, v in _meta(doc).items() if k not in BUILT_IN}
            if enabled:
                m |= {"document_name": doc.name, "uploader": "", "upload_date": doc.created_at,
                      "last_update_date": doc.updated_at, "source": doc.data_source_type or "upload_file"}
            await self.rag.set_document_metadata(t, ds, doc.id, m)

    async def update_documents(self, t: str, ds: str, operations: list[dict]) -> None:
        """Dify's POST .../documents/metadata: each document gets its listed values; without
        `partial_update`, its other declared fields are cleared (built-in values stay)."""
        await self.rag.get_dataset(t, ds)
        fields = {f["id"]: f for f in await self._fields(t, ds)}
        declared = {f["name"] for f in fields.values()}
        plans = []
        for i, op in enumerate(operations):
            values = {}
            for j, item in enumerate(op["metadata_list"]):
                at = f"operation_data.{i}.metadata_list.{j}"
                f = fields.get(item["id"])
                if f is None:
                    raise BadRequest("no metadata field of this dataset has that id", field=f"{at}.id")
                values[f["name"]] = check_value(f["type"], item.get("value"), f"{at}.value")
            plans.append((op["document_id"], values, bool(op.get("partial_update"))))
        for document_id, values, partial in plans:
            doc = await self.rag.get_document(t, ds, document_id)  # 404 for another dataset's
            old = _meta(doc)
            kept = old if partial else {k: v for k, v in old.items() if k not in declared}
            new = {**kept, **{k: v for k, v in values.items() if v is not None}}
            for k in (k for k, v in values.items() if v is None):
                new.pop(k, None)
            await self.rag.set_document_metadata(t, ds, document_id, new)

    async def as_dify(self, t: str, ds: str, documents: list[dict]) -> list[dict]:
        """Documents' `doc_metadata` in Dify's shape, [{id, name, type, value}], for the declared
        fields (and the built-in ones while switched on) each document has a value of."""
        known = {f["name"]: (f["id"], f["type"]) for f in await self._fields(t, ds)}
        if await self.built_in_enabled(t, ds):
            known |= {name: ("built-in", kind) for name, kind in BUILT_IN.items()}
        for d in documents:
            values = d.get("doc_metadata") or {}
            d["doc_metadata"] = [{"id": i, "name": n, "type": k, "value": values[n]}
                                 for n, (i, k) in known.items() if n in values]
        return documents

    async def forget(self, t: str, ds: str) -> None:
        """A deleted dataset's fields and settings go too."""
        await self.fields.forget(t, ds)
