"""The dataset metadata tables: the fields a dataset declares (`dataset_metadata_fields`) and
its built-in fields switch (`dataset_metadata_settings`). The rules and the documents' values
(kept in the rag service) are domain/knowledge_metadata.py's."""

from __future__ import annotations

import asyncpg

from loom_common.ids import new_id
from loom_gateway.domain.errors import Conflict, NotFound


class MetadataFields:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def list(self, t: str, ds: str) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT * FROM dataset_metadata_fields WHERE tenant_id = $1 AND dataset_id = $2"
                                     " ORDER BY created_at, id", t, ds)

    async def get(self, t: str, ds: str, field_id: str) -> asyncpg.Record:
        row = await self.pool.fetchrow("SELECT * FROM dataset_metadata_fields WHERE tenant_id = $1"
                                       " AND dataset_id = $2 AND id = $3", t, ds, field_id)
        if row is None:
            raise NotFound("Metadata not found.", code="not_found")
        return row

    async def create(self, t: str, ds: str, name: str, kind: str) -> asyncpg.Record:
        try:
            return await self.pool.fetchrow(
                "INSERT INTO dataset_metadata_fields (id, tenant_id, dataset_id, name, type)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING *", new_id(), t, ds, name, kind)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"the dataset already has a field named {name!r}", code="duplicate_metadata") from None

    async def rename(self, t: str, ds: str, field_id: str, name: str) -> asyncpg.Record:
        try:
            return await self.pool.fetchrow("UPDATE dataset_metadata_fields SET name = $4 WHERE tenant_id = $1"
                                            " AND dataset_id = $2 AND id = $3 RETURNING *", t, ds, field_id, name)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"the dataset already has a field named {name!r}", code="duplicate_metadata") from None

    async def delete(self, field_id: str) -> None:
        await self.pool.execute("DELETE FROM dataset_metadata_fields WHERE id = $1", field_id)

    async def built_in_enabled(self, t: str, ds: str) -> bool:
        return bool(await self.pool.fetchval("SELECT built_in_enabled FROM dataset_metadata_settings"
                                             " WHERE tenant_id = $1 AND dataset_id = $2", t, ds))

    async def set_built_in(self, t: str, ds: str, enabled: bool) -> None:
        await self.pool.execute("INSERT INTO dataset_metadata_settings (dataset_id, tenant_id, built_in_enabled)"
                                " VALUES ($1, $2, $3) ON CONFLICT (dataset_id) DO UPDATE SET built_in_enabled = $3",
                                ds, t, enabled)

    async def forget(self, t: str, ds: str) -> None:
        """A deleted dataset's fields and settings go too."""
        await self.pool.execute("DELETE FROM dataset_metadata_fields WHERE tenant_id = $1 AND dataset_id = $2", t, ds)
        await self.pool.execute("DELETE FROM dataset_metadata_settings WHERE tenant_id = $1 AND dataset_id = $2",
                                t, ds)
