"""Raw files in an S3-compatible object store (AWS S3, MinIO, Ceph, R2...) through boto3, an
optional extra (`pip install loom-rag[s3]`). boto3 is blocking: calls run in a thread, each with
the client's connect/read timeouts and its standard retry mode.
"""

from __future__ import annotations

import asyncio

from loom_common.errors import RetryableError
from loom_rag.domain.errors import NotFound
from loom_rag.storage.keys import validate_key


class S3FileStore:
    def __init__(self, *, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None):
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None,
            aws_access_key_id=access_key_id or None, aws_secret_access_key=secret_access_key or None,
            config=Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3}))

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _call(self, fn, **kw):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(fn, **kw)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise NotFound(f"no stored file {kw.get('Key')!r}") from exc
            raise RetryableError(f"object store: {exc}") from exc
        except BotoCoreError as exc:
            raise RetryableError(f"object store: {exc}") from exc

    async def put(self, key: str, data: bytes) -> None:
        await self._call(self._client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data)

    async def get(self, key: str) -> bytes:
        resp = await self._call(self._client.get_object, Bucket=self.bucket, Key=self._key(key))
        return await asyncio.to_thread(resp["Body"].read)

    async def delete(self, key: str) -> None:
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def delete_prefix(self, prefix: str) -> None:
        full = self._key(prefix.rstrip("/")) + "/"
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        for page in await asyncio.to_thread(list, pages):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                await self._call(self._client.delete_objects, Bucket=self.bucket, Delete={"Objects": keys})
