"""The console's view of an app's conversations (its logs page): every end user's, filtered, each
with its feedback counts, and a conversation's messages with the feedback end users gave them
(the service API's `POST /v1/messages/{id}/feedbacks`). Read-only; scoped to the workspace and
app the caller named, so another workspace's ids answer 404."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import asyncpg

from loom_gateway.domain.errors import NotFound

Feedback = Literal["like", "dislike", "any"]


@dataclass(frozen=True)
class ConversationFilter:
    keyword: str = ""            # in the conversation's name or any of its queries and answers
    user: str = ""               # the end user's id as the app's caller sent it (exact)
    feedback: Feedback | None = None  # only conversations with a message rated so (any: rated at all)
    page: int = 1
    limit: int = 20


def _like_pattern(text: str) -> str:
    """`text` as a literal ILIKE substring (its % and _ are not wildcards)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_LIST = """
SELECT c.id, c.name, c.status, c.created_at, c.updated_at, u.session_id AS end_user,
       count(m.id) AS message_count,
       count(m.id) FILTER (WHERE m.feedback_rating = 'like') AS likes,
       count(m.id) FILTER (WHERE m.feedback_rating = 'dislike') AS dislikes,
       count(*) OVER () AS total
  FROM conversations c
  JOIN end_users u ON u.id = c.end_user_id
  LEFT JOIN messages m ON m.conversation_id = c.id
 WHERE c.tenant_id = $1 AND c.app_id = $2 AND c.deleted_at IS NULL
   AND ($3 = '' OR u.session_id = $3)
   AND ($4::text IS NULL OR c.name ILIKE $4 OR EXISTS (
        SELECT 1 FROM messages k WHERE k.conversation_id = c.id AND (k.query ILIKE $4 OR k.answer ILIKE $4)))
   AND ($5::text IS NULL OR EXISTS (
        SELECT 1 FROM messages f WHERE f.conversation_id = c.id AND f.feedback_rating IS NOT NULL
           AND ($5 = 'any' OR f.feedback_rating = $5)))
 GROUP BY c.id, u.session_id
 ORDER BY c.updated_at DESC, c.id
OFFSET $6 LIMIT $7
"""

_MESSAGES = """
SELECT id, run_id, query, answer, status, error, feedback_rating, feedback_content, created_at, metadata
  FROM messages WHERE conversation_id = $1 ORDER BY created_at, id LIMIT $2
"""


class ConversationLogs:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def conversations(self, tenant_id: str, app_id: str, f: ConversationFilter) -> dict:
        args = (tenant_id, app_id, f.user, _like_pattern(f.keyword) if f.keyword else None, f.feedback)
        rows = await self.pool.fetch(_LIST, *args, (f.page - 1) * f.limit, f.limit)
        total = rows[0]["total"] if rows else 0
        if not rows and f.page > 1:  # past the end: the filter's total all the same
            first = await self.pool.fetch(_LIST, *args, 0, 1)
            total = first[0]["total"] if first else 0
        data = [{"id": r["id"], "name": r["name"], "status": r["status"], "end_user": r["end_user"],
                 "message_count": r["message_count"], "likes": r["likes"], "dislikes": r["dislikes"],
                 "created_at": int(r["created_at"].timestamp()), "updated_at": int(r["updated_at"].timestamp())}
                for r in rows]
        return {"data": data, "total": total, "page": f.page, "limit": f.limit,
                "has_more": f.page * f.limit < total}

    async def messages(self, tenant_id: str, app_id: str, conversation_id: str, limit: int) -> dict:
        row = await self.pool.fetchrow(
            "SELECT c.id, c.name, u.session_id FROM conversations c JOIN end_users u ON u.id = c.end_user_id"
            " WHERE c.id = $1 AND c.tenant_id = $2 AND c.app_id = $3 AND c.deleted_at IS NULL",
            conversation_id, tenant_id, app_id)
        if row is None:
            raise NotFound("Conversation Not Exists.", code="conversation_not_exists")
        rows = await self.pool.fetch(_MESSAGES, conversation_id, limit + 1)
        data = []
        for r in rows[:limit]:
            rating = r["feedback_rating"]
            meta = json.loads(r["metadata"])
            data.append({"id": r["id"], "run_id": r["run_id"], "query": r["query"], "answer": r["answer"],
                         "status": r["status"], "error": r["error"],
                         "feedback": {"rating": rating, "content": r["feedback_content"]} if rating else None,
                         "total_tokens": (meta.get("usage") or {}).get("total_tokens"),
                         "created_at": int(r["created_at"].timestamp())})
        return {"conversation": {"id": row["id"], "name": row["name"], "end_user": row["session_id"]},
                "data": data, "limit": limit, "has_more": len(rows) > limit}
