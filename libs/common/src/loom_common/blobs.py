"""Where uploaded files' bytes live: one interface for the gateway (which writes them) and the
orchestrator (which reads a run's files), over a local folder or an S3-compatible bucket.

Keys are `<tenant id>/<file id>.<extension>`, built only by `file_key` from ids the gateway
issued and a short extension, each checked against a strict pattern: nothing a client sends
becomes a path, and a reader given one tenant's id can name no other tenant's file.

`BlobStore.get` raises `BlobMissing` (a PermanentError) for a key with nothing stored.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel

from loom_common.errors import PermanentError
from loom_common.settings import loom_home

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EXT = re.compile(r"^[a-z0-9]{1,10}$")


class BlobMissing(PermanentError):
    code = "file_not_found"


def file_key(tenant_id: str, file_id: str, extension: str) -> str:
    """The storage key of an uploaded file; ValueError for an id or extension that could
    escape its tenant's folder (a slash, dots, anything outside the patterns)."""
    ext = extension.lower().lstrip(".")
    if not _ID.match(tenant_id or "") or not _ID.match(file_id or ""):
        raise ValueError("a file id is letters, digits, '-' and '_' only")
    if ext and not _EXT.match(ext):
        raise ValueError(f"file extension {extension!r} is not a plain extension")
    return f"{tenant_id}/{file_id}.{ext}" if ext else f"{tenant_id}/{file_id}"


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes: ...


class LocalBlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _read(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(f"no stored file {key.rsplit('/', 1)[-1]}") from None

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, key, data)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str, **client_kwargs):
        import boto3  # optional dependency: pip install boto3 (the services' `s3` extra)

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = boto3.client("s3", **{k: v for k, v in client_kwargs.items() if v})

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self.client.put_object, Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)

    async def get(self, key: str) -> bytes:
        try:
            obj = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=f"{self.prefix}/{key}")
        except self.client.exceptions.NoSuchKey:
            raise BlobMissing(f"no stored file {key.rsplit('/', 1)[-1]}") from None
        return await asyncio.to_thread(obj["Body"].read)


class StorageSettings(BaseModel):
    """The deployment's file store: one declaration that the gateway's and the orchestrator's
    settings inherit, each under its own prefix (`LOOM_GATEWAY_STORAGE_BACKEND`,
    `LOOM_ORCHESTRATOR_S3_BUCKET`, ...). Both must name the same folder or bucket: the gateway
    writes uploads there and the orchestrator's document-extractor reads them. Rag's settings
    inherit it too, for rag's own store (another prefix and folder)."""

    # A local folder (default $LOOM_HOME/gateway/files) or an S3-compatible store.
    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: str | None = None
    s3_bucket: str = "loom"
    s3_prefix: str = "gateway"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None

    def storage_root(self) -> Path:
        if self.storage_dir:
            return Path(self.storage_dir)
        return Path(getattr(self, "home", None) or loom_home()) / "gateway" / "files"


def open_store(config: StorageSettings) -> BlobStore:
    if config.storage_backend == "s3":
        return S3BlobStore(config.s3_bucket, config.s3_prefix, endpoint_url=config.s3_endpoint_url,
                           region_name=config.s3_region, aws_access_key_id=config.s3_access_key_id,
                           aws_secret_access_key=config.s3_secret_access_key)
    return LocalBlobStore(config.storage_root())
