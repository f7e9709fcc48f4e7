"""Knowledge tags (Dify's dataset tags): a workspace's tags, bound to its datasets, and the
datasets of a set of tags (what `GET /v1/datasets?tag_ids=` lists). The datasets are the rag
service's; the route checks one exists in the workspace before binding a tag to it."""

from __future__ import annotations

import asyncpg

from loom_common.ids import new_id
from loom_gateway.domain.errors import BadRequest, Conflict, NotFound

MAX_TAGS = 1000


def _name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 50:
        raise BadRequest("a tag name is 1 to 50 characters", field="name")
    return name


class KnowledgeTags:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def list(self, t: str) -> list[dict]:
        rows = await self.pool.fetch(
            "SELECT t.id, t.name, (SELECT count(*) FROM knowledge_tag_bindings b WHERE b.tag_id = t.id) AS n"
            " FROM knowledge_tags t WHERE t.tenant_id = $1 ORDER BY t.created_at, t.id", t)
        return [{"id": r["id"], "name": r["name"], "type": "knowledge", "binding_count": str(r["n"])} for r in rows]

    async def create(self, t: str, name: str) -> dict:
        name = _name(name)
        if await self.pool.fetchval("SELECT count(*) FROM knowledge_tags WHERE tenant_id = $1", t) >= MAX_TAGS:
            raise Conflict(f"a workspace holds at most {MAX_TAGS} knowledge tags", code="tag_limit")
        try:
            row = await self.pool.fetchrow("INSERT INTO knowledge_tags (id, tenant_id, name) VALUES ($1, $2, $3)"
                                           " RETURNING id, name", new_id(), t, name)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a tag named {name!r} exists", code="duplicate_tag") from None
        return {"id": row["id"], "name": row["name"], "type": "knowledge", "binding_count": "0"}

    async def rename(self, t: str, tag_id: str, name: str) -> dict:
        name = _name(name)
        try:
            row = await self.pool.fetchrow("UPDATE knowledge_tags SET name = $3 WHERE tenant_id = $1 AND id = $2"
                                           " RETURNING id, name", t, tag_id, name)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a tag named {name!r} exists", code="duplicate_tag") from None
        if row is None:
            raise NotFound("Tag not found.", code="not_found")
        n = await self.pool.fetchval("SELECT count(*) FROM knowledge_tag_bindings WHERE tag_id = $1", tag_id)
        return {"id": row["id"], "name": row["name"], "type": "knowledge", "binding_count": str(n)}

    async def delete(self, t: str, tag_id: str) -> None:
        if await self.pool.execute("DELETE FROM knowledge_tags WHERE tenant_id = $1 AND id = $2",
                                   t, tag_id) == "DELETE 0":
            raise NotFound("Tag not found.", code="not_found")

    async def bind(self, t: str, tag_ids: list[str], target_id: str) -> None:
        found = await self.pool.fetch("SELECT id FROM knowledge_tags WHERE tenant_id = $1 AND id = ANY($2::text[])",
                                      t, tag_ids)
        if len(found) != len(set(tag_ids)):
            raise NotFound("Tag not found.", code="not_found")
        await self.pool.executemany("INSERT INTO knowledge_tag_bindings (tag_id, tenant_id, target_id)"
                                    " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                                    [(tag_id, t, target_id) for tag_id in set(tag_ids)])

    async def unbind(self, t: str, tag_id: str, target_id: str) -> None:
        await self.pool.execute("DELETE FROM knowledge_tag_bindings WHERE tenant_id = $1 AND tag_id = $2"
                                " AND target_id = $3", t, tag_id, target_id)

    async def of_targets(self, t: str, target_ids: list[str]) -> dict[str, list[dict]]:
        rows = await self.pool.fetch(
            "SELECT b.target_id, t.id, t.name FROM knowledge_tag_bindings b JOIN knowledge_tags t ON t.id = b.tag_id"
            " WHERE b.tenant_id = $1 AND b.target_id = ANY($2::text[]) ORDER BY t.name", t, target_ids)
        out: dict[str, list[dict]] = {d: [] for d in target_ids}
        for r in rows:
            out[r["target_id"]].append({"id": r["id"], "name": r["name"], "type": "knowledge"})
        return out

    async def targets(self, t: str, tag_ids: list[str]) -> list[str]:
        """Datasets bound to any of the tags."""
        rows = await self.pool.fetch("SELECT DISTINCT target_id FROM knowledge_tag_bindings WHERE tenant_id = $1"
                                     " AND tag_id = ANY($2::text[]) LIMIT 1000", t, tag_ids)
        return [r["target_id"] for r in rows]

    async def forget(self, t: str, target_id: str) -> None:
        await self.pool.execute("DELETE FROM knowledge_tag_bindings WHERE tenant_id = $1 AND target_id = $2",
                                t, target_id)
