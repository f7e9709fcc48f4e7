"""A run's uploaded files, read from the file store the gateway writes (`loom_common.blobs`)
and turned into text by the bounded parser (`loom_common.documents_bounded`), or read as bytes
(an image an llm node shows its model).

The key comes from the run's tenant (never from the request) and the file's id and extension
(the gateway checked the id against its files table when the run was requested); `file_key`
refuses anything that is not a plain id, so a file entry cannot point outside its tenant.
At most `max_concurrent` files are parsed at once per process: an OCR child holds ~600 MB.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loom_common.blobs import BlobStore, file_key
from loom_common.documents import UnreadableDocument
from loom_common.documents_bounded import ExtractLimits, extract_isolated
from loom_orchestrator.engine.ports import DocumentText


class StoredDocuments:
    def __init__(self, store: BlobStore, limits: ExtractLimits = ExtractLimits(), max_concurrent: int = 2):
        self.store, self.limits = store, limits
        self._slots = asyncio.Semaphore(max_concurrent)

    async def read_text(self, tenant_id: str, file: dict[str, Any]) -> DocumentText:
        name = file_name(file)
        data = await self.store.get(_key(tenant_id, file, name))
        async with self._slots:
            got = await extract_isolated(data, name, str(file.get("mime_type") or ""), self.limits)
        return DocumentText(text=got.text, pages=got.pages)

    async def read_bytes(self, tenant_id: str, file: dict[str, Any], max_bytes: int) -> bytes:
        name = file_name(file)
        data = await self.store.get(_key(tenant_id, file, name))
        if len(data) > max_bytes:
            raise UnreadableDocument(f"{name}: {len(data)} bytes, over the {max_bytes} bytes a model is sent")
        return data


def file_name(file: dict[str, Any]) -> str:
    return str(file.get("filename") or file.get("name") or file.get("upload_file_id") or "file")


def _key(tenant_id: str, file: dict[str, Any], name: str) -> str:
    """The file's key in the store: the run's tenant, the file's id and extension, nothing else."""
    file_id = file.get("upload_file_id") or file.get("related_id")
    if file.get("transfer_method", "local_file") != "local_file" or not isinstance(file_id, str):
        raise UnreadableDocument(f"{name}: only uploaded files (transfer_method local_file) can be read")
    try:
        return file_key(tenant_id, file_id, str(file.get("extension") or ""))
    except ValueError as exc:
        raise UnreadableDocument(f"{name}: {exc}") from None
