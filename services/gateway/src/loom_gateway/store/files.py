"""Files end users upload (`POST /v1/files/upload`): metadata in Postgres, bytes in a store.

Stores (`loom_common.blobs`, shared with the orchestrator, which reads a run's files through
the same interface): a local folder (default) or an S3-compatible bucket (boto3, optional
extra `s3`, called in a thread). Keys are `loom_common.blobs.file_key`'s
`<tenant>/<file id>.<ext>`, so nothing user-given reaches a path.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import asyncpg

from loom_common.blobs import BlobStore, file_key
from loom_common.ids import new_id
from loom_gateway.domain.errors import BadRequest, NotFound, PayloadTooLarge

ALLOWED_EXTENSIONS = {".txt", ".md", ".markdown", ".pdf", ".html", ".htm", ".csv", ".json", ".docx", ".xlsx",
                      ".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".mp3", ".wav", ".mp4", ".xml", ".yaml",
                      ".yml", ".pptx", ".eml", ".epub"}


class Files:
    def __init__(self, pool: asyncpg.Pool, store: BlobStore, max_bytes: int):
        self.pool = pool
        self.store = store
        self.max_bytes = max_bytes

    async def upload(self, tenant_id: str, app_id: str | None, end_user_id: str | None, name: str,
                     data: bytes, mime_type: str | None) -> dict:
        if not name:
            raise BadRequest("file must have a file name", field="file")
        ext = Path(name).suffix.lower()
        if ext not in ALLOWED_EXTENSIONS:
            raise BadRequest(f"file type {ext or '(none)'} is not supported", code="unsupported_file_type",
                             field="file")
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"file is larger than {self.max_bytes} bytes", code="file_too_large")
        file_id = new_id()
        key = file_key(tenant_id, file_id, ext)
        await self.store.put(key, data)
        mime = mime_type if mime_type and mime_type != "application/octet-stream" else \
            (mimetypes.guess_type(name)[0] or "application/octet-stream")
        row = await self.pool.fetchrow("INSERT INTO files (id, tenant_id, app_id, end_user_id, name, size,"
                                       " extension, mime_type, storage_key) VALUES ($1, $2, $3, $4, $5, $6, $7,"
                                       " $8, $9) RETURNING created_at", file_id, tenant_id, app_id, end_user_id,
                                       name[:255], len(data), ext.lstrip("."), mime, key)
        return {"id": file_id, "name": name[:255], "size": len(data), "extension": ext.lstrip("."),
                "mime_type": mime, "created_by": end_user_id, "created_at": int(row["created_at"].timestamp())}

    async def resolve(self, tenant_id: str, files: Any, field: str = "files") -> list[dict]:
        """A run request's `files`, each uploaded one looked up in the app's workspace: an id from
        another workspace, or one that was never uploaded, is refused the way Dify refuses it
        (400 invalid_param "Invalid upload file"). Found ones carry the stored name, type and size."""
        if not isinstance(files, list):
            return files  # the run's own checks name a malformed `files`
        return [await self._resolved(tenant_id, f, f"{field}.{i}") if _is_upload(f) else f
                for i, f in enumerate(files)]

    async def _resolved(self, tenant_id: str, f: dict, field: str) -> dict:
        file_id = f.get("upload_file_id")
        row = await self.pool.fetchrow("SELECT name, size, extension, mime_type FROM files WHERE id = $1"
                                       " AND tenant_id = $2", file_id, tenant_id) \
            if isinstance(file_id, str) and file_id else None
        if row is None:
            raise BadRequest("Invalid upload file", field=f"{field}.upload_file_id")
        return {**f, "upload_file_id": file_id, "filename": row["name"], "size": row["size"],
                "extension": row["extension"], "mime_type": row["mime_type"]}

    async def resolve_inputs(self, tenant_id: str, inputs: Any) -> Any:
        """File inputs (a start node's `file` and `file-list` variables, Dify's shape: an object or a
        list of objects with `upload_file_id`) resolved as `files` are; other inputs unchanged."""
        if not isinstance(inputs, dict):
            return inputs
        out = dict(inputs)
        for name, value in inputs.items():
            if _is_upload(value):
                out[name] = await self._resolved(tenant_id, value, f"inputs.{name}")
            elif isinstance(value, list) and value and all(_is_upload(v) for v in value):
                out[name] = await self.resolve(tenant_id, value, f"inputs.{name}")
        return out

    async def read(self, tenant_id: str, file_id: str) -> tuple[dict, bytes]:
        row = await self.pool.fetchrow("SELECT name, mime_type, storage_key FROM files WHERE id = $1 AND"
                                       " tenant_id = $2", file_id, tenant_id)
        if row is None:
            raise NotFound("File not found.", code="file_not_found")
        return dict(row), await self.store.get(row["storage_key"])


def _is_upload(f: Any) -> bool:
    return isinstance(f, dict) and (f.get("transfer_method") == "local_file" or "upload_file_id" in f)
