"""The per-tenant tool registry in the `tools` schema, credentials sealed at rest.

Listing returns specs without credentials; only `get` (used by the executor to run a tool)
opens them.
"""

from __future__ import annotations

import json

import asyncpg

from loom_tools.domain.registry import check_spec, public_config
from loom_tools.domain.secrets import SecretBox
from loom_tools.domain.types import ToolSpec
from loom_tools.errors import Conflict, NotFound


class Registry:
    def __init__(self, pool: asyncpg.Pool, box: SecretBox) -> None:
        self._pool = pool
        self._box = box

    async def add(self, tenant_id: str, specs: list[ToolSpec], *, replace: bool = False,
                  replace_prefix: str | None = None) -> None:
        """Register several tools atomically (an OpenAPI import is all or nothing).

        `replace` overwrites tools of the same names; `replace_prefix` first drops every tool
        under `<prefix>.` (a re-import must not leave operations the new spec removed).
        """
        for spec in specs:
            check_spec(spec)
        rows = [(tenant_id, s.name, s.description, s.kind, json.dumps(s.parameters),
                 json.dumps(s.config), self._box.seal(s.credentials)) for s in specs]
        conflict = ("ON CONFLICT (tenant_id, name) DO UPDATE SET description = EXCLUDED.description, "
                    "kind = EXCLUDED.kind, parameters = EXCLUDED.parameters, config = EXCLUDED.config, "
                    "credentials = EXCLUDED.credentials" if replace else "")
        async with self._pool.acquire() as conn, conn.transaction():
            if replace_prefix:
                await conn.execute("DELETE FROM tools WHERE tenant_id = $1 AND starts_with(name, $2)",
                                   tenant_id, replace_prefix + ".")
            try:
                await conn.executemany(
                    "INSERT INTO tools (tenant_id, name, description, kind, parameters, config, credentials) "
                    f"VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7) {conflict}", rows)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"a tool with one of these names exists: {[s.name for s in specs]}",
                               field="name") from exc

    async def list(self, tenant_id: str) -> list[ToolSpec]:
        rows = await self._pool.fetch(
            "SELECT name, description, kind, parameters, config, credentials IS NOT NULL AS has_credentials "
            "FROM tools WHERE tenant_id = $1 ORDER BY name", tenant_id)
        return [ToolSpec(r["name"], r["description"], r["kind"], json.loads(r["parameters"]),
                         public_config(json.loads(r["config"])), has_credentials=r["has_credentials"])
                for r in rows]

    async def get(self, tenant_id: str, name: str) -> ToolSpec:
        row = await self._pool.fetchrow(
            "SELECT name, description, kind, parameters, config, credentials FROM tools "
            "WHERE tenant_id = $1 AND name = $2", tenant_id, name)
        if row is None:
            raise NotFound(f"no tool {name!r} for this tenant", field="tool")
        return ToolSpec(row["name"], row["description"], row["kind"], json.loads(row["parameters"]),
                        json.loads(row["config"]), self._box.open(row["credentials"]),
                        has_credentials=row["credentials"] is not None)

    async def delete(self, tenant_id: str, name: str) -> int:
        """Delete a tool, or every tool under a prefix when `name` ends with '.*'."""
        if name.endswith(".*"):
            status = await self._pool.execute(
                "DELETE FROM tools WHERE tenant_id = $1 AND starts_with(name, $2)", tenant_id, name[:-1])
        else:
            status = await self._pool.execute(
                "DELETE FROM tools WHERE tenant_id = $1 AND name = $2", tenant_id, name)
        deleted = int(status.split()[-1])
        if not deleted:
            raise NotFound(f"no tool {name!r} for this tenant", field="name")
        return deleted
