"""A workspace's settings the console edits: where uploaded files go (the gateway's local folder
or an S3-compatible bucket) and its default chat and embedding models.

One row per workspace (`workspace_settings`), read on every use, so a change takes effect
without a restart. The S3 secret key is sealed at rest and never returned; leaving it out of
an update keeps the stored one. The local backend is always the gateway's own folder (a
console user never picks a server path).

`WorkspaceBlobStore` is the file store the gateway uses: it routes each file to the store its
workspace chose when written (keys start with the workspace id), and reads a file from the
workspace's current store, then from the service's default one (files kept from before a
switch stay readable; files written to a bucket the workspace left are not moved).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from loom_gateway.domain import sealing
from loom_gateway.domain.endpoint_urls import UrlPolicy, vet
from loom_gateway.domain.errors import BadRequest

BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")  # S3's bucket naming rules
PREFIX = re.compile(r"^[A-Za-z0-9_\-./]{0,200}$")
S3_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class S3Config:
    bucket: str
    prefix: str = "gateway"
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None   # opened; never in a response

    def public(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "prefix": self.prefix, "endpoint_url": self.endpoint_url,
                "region": self.region, "access_key_id": self.access_key_id,
                "secret_access_key_set": bool(self.secret_access_key),
                "secret_access_key_hint": sealing.hint(self.secret_access_key)}


def check_s3(raw: dict[str, Any]) -> dict[str, Any]:
    """The s3 settings' shape (bounded, named fields); the endpoint URL is vetted separately."""
    bucket, prefix = raw.get("bucket"), raw.get("prefix", "gateway")
    if not isinstance(bucket, str) or not BUCKET.match(bucket) or ".." in bucket:
        raise BadRequest("s3.bucket must be an S3 bucket name (3-63 of a-z 0-9 . -)", field="s3.bucket")
    if not isinstance(prefix, str) or not PREFIX.match(prefix) or ".." in prefix:
        raise BadRequest("s3.prefix: at most 200 of A-Z a-z 0-9 _ - . / and no '..'", field="s3.prefix")
    out: dict[str, Any] = {"bucket": bucket, "prefix": prefix.strip("/")}
    for name, limit in (("endpoint_url", 2048), ("region", 64), ("access_key_id", 128), ("secret_access_key", 256)):
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise BadRequest(f"s3.{name} must be text of at most {limit} characters", field=f"s3.{name}")
        out[name] = value or None
    return out


class WorkspaceSettings:
    def __init__(self, pool: asyncpg.Pool, sealer: sealing.Sealer, policy: UrlPolicy, local_root: str,
                 default_chat_model: str, default_embedding_model: str | None):
        self.pool, self.sealer, self.policy = pool, sealer, policy
        self.local_root = local_root
        self.default_chat_model, self.default_embedding_model = default_chat_model, default_embedding_model

    async def _row(self, tenant_id: str):
        return await self.pool.fetchrow("SELECT * FROM workspace_settings WHERE tenant_id = $1", tenant_id)

    # ---- storage -------------------------------------------------------------------------

    async def s3(self, tenant_id: str) -> S3Config | None:
        """The workspace's bucket, or None when its files go to the service's default store."""
        row = await self._row(tenant_id)
        storage = json.loads(row["storage"]) if row and row["storage"] else None
        if not storage or storage.get("backend") != "s3":
            return None
        return S3Config(**storage["s3"], secret_access_key=self.sealer.open(row["storage_secret"]))

    async def storage(self, tenant_id: str) -> dict[str, Any]:
        s3 = await self.s3(tenant_id)
        if s3 is None:
            return {"backend": "local", "local": {"path": self.local_root}, "s3": None}
        return {"backend": "s3", "local": None, "s3": s3.public()}

    async def parse_storage(self, tenant_id: str, raw: dict[str, Any]) -> S3Config | None:
        """A storage update checked (None: the local folder); a missing S3 secret keeps the stored one."""
        backend = raw.get("backend")
        if backend == "local":
            return None
        if backend != "s3":
            raise BadRequest("backend must be 'local' or 's3'", field="backend")
        if not isinstance(raw.get("s3"), dict):
            raise BadRequest("s3 settings are required for the s3 backend", field="s3")
        s3 = check_s3(raw["s3"])
        if s3["endpoint_url"]:
            s3["endpoint_url"] = (await vet(s3["endpoint_url"], self.policy, field="s3.endpoint_url")).url
        if s3["secret_access_key"] is None:
            kept = await self.s3(tenant_id)
            s3["secret_access_key"] = kept.secret_access_key if kept else None
        return S3Config(**s3)

    async def set_storage(self, tenant_id: str, s3: S3Config | None) -> dict[str, Any]:
        storage = {"backend": "local"} if s3 is None else {
            "backend": "s3", "s3": {k: v for k, v in vars(s3).items() if k != "secret_access_key"}}
        secret = self.sealer.seal(s3.secret_access_key) if s3 else None
        await self.pool.execute(
            "INSERT INTO workspace_settings (tenant_id, storage, storage_secret) VALUES ($1, $2::jsonb, $3)"
            " ON CONFLICT (tenant_id) DO UPDATE SET storage = $2::jsonb, storage_secret = $3, updated_at = now()",
            tenant_id, json.dumps(storage), secret)
        return await self.storage(tenant_id)

    async def test_storage(self, s3: S3Config | None) -> dict[str, Any]:
        """Write, read back and delete a probe object; `ok` False with the reason when that fails."""
        store = LocalProbe(Path(self.local_root)) if s3 is None else S3Store(s3)
        key = f"_loom_probe/{uuid.uuid4().hex}"
        try:
            async with asyncio.timeout(S3_TIMEOUT_S):
                await store.put(key, b"loom storage probe")
                if await store.get(key) != b"loom storage probe":
                    raise ValueError("the probe read back differs from what was written")
                await store.delete(key)
        except Exception as exc:  # any failure of the store is the test's answer, not a 500
            return {"ok": False, "backend": "s3" if s3 else "local", "error": _storage_reason(exc)}
        return {"ok": True, "backend": "s3" if s3 else "local", "error": None}

    # ---- default models ------------------------------------------------------------------

    async def default_models(self, tenant_id: str) -> dict[str, Any]:
        row = await self._row(tenant_id)
        chat = row["default_chat_model"] if row else None
        embedding = row["default_embedding_model"] if row else None
        return {"default_chat_model": chat or self.default_chat_model,
                "default_embedding_model": embedding or self.default_embedding_model,
                "chat_model_is_default": chat is None, "embedding_model_is_default": embedding is None}

    async def set_default_models(self, tenant_id: str, chat: str | None, embedding: str | None) -> dict[str, Any]:
        await self.pool.execute(
            "INSERT INTO workspace_settings (tenant_id, default_chat_model, default_embedding_model)"
            " VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE SET default_chat_model = $2,"
            " default_embedding_model = $3, updated_at = now()", tenant_id, chat or None, embedding or None)
        return await self.default_models(tenant_id)

    async def embedding_model(self, tenant_id: str) -> str | None:
        """The embedding model the workspace chose for new datasets (None: the knowledge service's default)."""
        row = await self._row(tenant_id)
        return row["default_embedding_model"] if row else None

    async def chat_model(self, tenant_id: str) -> str:
        """The chat model new apps of this workspace start with."""
        return (await self.default_models(tenant_id))["default_chat_model"]


# What an S3 error code means to the person filling the form (the code stays in the message).
_S3_CODES = {"SignatureDoesNotMatch": "the secret access key does not match the access key ID",
             "InvalidAccessKeyId": "the server knows no such access key ID",
             "AccessDenied": "the key may not write to this bucket",
             "NoSuchBucket": "the bucket does not exist"}


def _storage_reason(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {S3_TIMEOUT_S:.0f} s"
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    if code in _S3_CODES:
        return f"{_S3_CODES[code]} ({code})"
    return f"{type(exc).__name__}: {code or str(exc)[:300]}"


class LocalProbe:
    """The local folder, as far as a storage test needs it."""

    def __init__(self, root: Path):
        self.root = root

    async def put(self, key: str, data: bytes) -> None:
        def write() -> None:
            (self.root / key).parent.mkdir(parents=True, exist_ok=True)
            (self.root / key).write_bytes(data)
        await asyncio.to_thread(write)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread((self.root / key).read_bytes)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread((self.root / key).unlink)


class S3Store:
    """An S3-compatible bucket (boto3, called in a thread; optional extra `s3`)."""

    def __init__(self, cfg: S3Config):
        import boto3  # optional dependency: pip install 'loom-gateway[s3]'
        from botocore.config import Config

        self.bucket, self.prefix = cfg.bucket, cfg.prefix.strip("/")
        self.client = boto3.client(
            "s3", endpoint_url=cfg.endpoint_url, region_name=cfg.region or "us-east-1",
            aws_access_key_id=cfg.access_key_id, aws_secret_access_key=cfg.secret_access_key,
            config=Config(connect_timeout=5, read_timeout=S3_TIMEOUT_S, retries={"max_attempts": 1}))

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data)

    async def get(self, key: str) -> bytes:
        def read() -> bytes:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        return await asyncio.to_thread(read)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self._key(key))


class WorkspaceBlobStore:
    """The gateway's file store: each workspace's own bucket when it chose one, else the default."""

    def __init__(self, settings: WorkspaceSettings, default):
        self.settings, self.default = settings, default
        self._clients: dict[S3Config, S3Store] = {}

    async def _store(self, key: str):
        s3 = await self.settings.s3(key.split("/", 1)[0])
        if s3 is None:
            return self.default
        if s3 not in self._clients:  # one boto3 client per configuration (a changed one is a new key)
            if len(self._clients) > 64:
                self._clients.clear()
            self._clients[s3] = S3Store(s3)
        return self._clients[s3]

    async def put(self, key: str, data: bytes) -> None:
        await (await self._store(key)).put(key, data)

    async def get(self, key: str) -> bytes:
        store = await self._store(key)
        if store is self.default:
            return await store.get(key)
        try:
            return await store.get(key)
        except Exception:
            return await self.default.get(key)  # written before the workspace chose its bucket
