"""Dify's workflow logs (`GET /v1/workflows/logs`): a page of an app's runs, newest first,
filtered by status, by a keyword in their inputs or outputs, or by the end user's session."""

from __future__ import annotations

from typing import Any

import asyncpg

from loom_gateway.domain.errors import BadRequest

STATUSES = ("succeeded", "failed", "stopped", "running", "paused")

_MATCHING = """
  FROM runs r LEFT JOIN end_users e ON e.id = r.end_user_id
 WHERE r.tenant_id = $1 AND r.app_id = $2
   AND ($3::text IS NULL OR r.status = $3)
   AND ($4::text IS NULL OR r.id = $4 OR r.inputs::text ILIKE $5 ESCAPE '\\' OR r.outputs::text ILIKE $5 ESCAPE '\\')
   AND ($6::text IS NULL OR e.session_id = $6)
"""
# The count rides on the page's rows (one query); a page past the end has none, so it is counted apart.
_PAGE = """
SELECT r.id, r.app_version, r.status, r.error, r.total_tokens, r.total_steps, r.created_at, r.finished_at,
       e.id AS end_user_id, e.session_id, count(*) OVER () AS total""" + _MATCHING + """
 ORDER BY r.created_at DESC, r.id
 OFFSET $7 LIMIT $8
"""
_COUNT = "SELECT count(*)" + _MATCHING


def _like(keyword: str) -> str:
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def page(pool: asyncpg.Pool, tenant_id: str, app_id: str, *, status: str | None, keyword: str | None,
               session: str | None, page: int, limit: int) -> dict[str, Any]:
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {list(STATUSES)}", field="status")
    keyword = keyword or None
    match = (tenant_id, app_id, status, keyword, _like(keyword or ""), session)
    rows = await pool.fetch(_PAGE, *match, (page - 1) * limit, limit)
    total = rows[0]["total"] if rows else (await pool.fetchval(_COUNT, *match) if page > 1 else 0)
    return {"page": page, "limit": limit, "total": total, "has_more": page * limit < total,
            "data": [_log(r) for r in rows]}


def _log(r: asyncpg.Record) -> dict[str, Any]:
    created, finished = r["created_at"], r["finished_at"]
    return {
        "id": r["id"],
        "workflow_run": {"id": r["id"], "version": str(r["app_version"] or "draft"), "status": r["status"],
                         "error": r["error"], "total_tokens": r["total_tokens"], "total_steps": r["total_steps"],
                         "elapsed_time": (finished - created).total_seconds() if finished else None,
                         "created_at": int(created.timestamp()),
                         "finished_at": int(finished.timestamp()) if finished else None},
        "created_from": "service-api",
        "created_by_role": "end_user",
        "created_by_account": None,
        "created_by_end_user": ({"id": r["end_user_id"], "type": "service_api", "is_anonymous": False,
                                 "session_id": r["session_id"]} if r["end_user_id"] else None),
        "created_at": int(created.timestamp()),
    }
