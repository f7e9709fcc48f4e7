"""End users and their user-facing records: conversations, messages and feedback.

An end user is the `user` string an app's caller sends, scoped to that app: the same string in
two apps is two end users, and nobody sees another end user's conversations. Deleted
conversations are soft-deleted and vanish from every read.
"""

from __future__ import annotations

import json
import uuid

import asyncpg

from loom_common.ids import new_id
from loom_common.read_replica import Reads
from loom_gateway.domain.errors import BadRequest, NotFound


def conversation_body(row) -> dict:
    return {"id": row["id"], "name": row["name"], "inputs": json.loads(row["inputs"]), "status": row["status"],
            "introduction": "", "created_at": int(row["created_at"].timestamp()),
            "updated_at": int(row["updated_at"].timestamp())}


def message_body(row) -> dict:
    rating = row["feedback_rating"]
    meta = json.loads(row["metadata"])
    return {"id": row["id"], "conversation_id": row["conversation_id"], "parent_message_id": None,
            "inputs": json.loads(row["inputs"]), "query": row["query"], "answer": row["answer"],
            "message_files": json.loads(row["files"]), "feedback": {"rating": rating} if rating else None,
            "retriever_resources": meta.get("retriever_resources", []),
            "agent_thoughts": [agent_thought_body(t) for t in meta.get("agent_thoughts", [])],
            "status": row["status"], "error": row["error"], "created_at": int(row["created_at"].timestamp())}


def agent_thought_body(t: dict) -> dict:
    """An agent round as Dify lists it with a message (the run's `agent_thought` event)."""
    return {"id": t.get("id"), "chain_id": None, "message_id": t.get("message_id"), "position": t.get("position"),
            "thought": t.get("thought", ""), "tool": t.get("tool", ""), "tool_labels": {},
            "tool_input": t.get("tool_input", ""), "observation": t.get("observation", ""), "files": [],
            "created_at": t.get("created_at")}


_CONV = "id, name, inputs, status, created_at, updated_at"
_MSG = ("id, conversation_id, inputs, query, answer, files, metadata, status, error, feedback_rating, created_at")


def variable_id(app_id: str, declared: dict) -> str:
    """A declared conversation variable's id: Dify's, kept on import, else one derived from its name."""
    return declared.get("id") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"loom:{app_id}:{declared['name']}"))


def variable_body(app_id: str, declared: dict, value: object, created_at: int, updated_at: int) -> dict:
    """A conversation variable in Dify's shape: the value as text (JSON for anything not a string)."""
    return {"id": variable_id(app_id, declared),
            "name": declared["name"], "value_type": declared.get("value_type", "string"),
            "value": value if isinstance(value, str) or value is None else json.dumps(value, ensure_ascii=False),
            "description": declared.get("description", ""), "created_at": created_at, "updated_at": updated_at}


_TYPES = {"string": (str,), "number": (int, float), "boolean": (bool,), "object": (dict,)}


def check_value(value_type: str, value: object) -> None:
    """A value fits a conversation variable's declared type (Dify refuses a mismatch)."""
    if value_type.startswith("array"):
        item = value_type[6:-1] if value_type.startswith("array[") else "any"
        ok = isinstance(value, list) and (item == "any" or all(_fits(item, v) for v in value))
    else:
        ok = _fits(value_type, value)
    if not ok:
        raise BadRequest(f"Type mismatch: variable expects {value_type}, but got {type(value).__name__}",
                         field="value", code="conversation_variable_type_mismatch")


def _fits(value_type: str, value: object) -> bool:
    if isinstance(value, bool) and value_type != "boolean":
        return False  # JSON true is not a number
    return isinstance(value, _TYPES.get(value_type, (object,)))


def conversation_name(query: str) -> str:
    """A new conversation is named after the first line of its first query."""
    return (query.strip().splitlines() or ["New conversation"])[0][:40] or "New conversation"


# A turn's variables onto its conversation, unless a newer turn wrote them first. Values a
# client set through the API after this turn started stay on top and stay pending (the next run
# request carries them); a turn that started after them took them up: they are cleared.
_RECORD_TURN_VARIABLES = """
UPDATE conversations c
   SET variables = CASE WHEN c.variables_set_at > r.created_at THEN $2::jsonb || c.variables_set ELSE $2::jsonb END,
       variables_at = r.created_at,
       variables_set = CASE WHEN c.variables_set_at > r.created_at THEN c.variables_set END,
       variables_set_at = CASE WHEN c.variables_set_at > r.created_at THEN c.variables_set_at END
  FROM runs r
 WHERE r.id = $1 AND c.id = r.conversation_id AND (c.variables_at IS NULL OR c.variables_at <= r.created_at)
"""


async def record_turn_variables(conn: asyncpg.Connection, run_id: str, values: dict) -> None:
    """The conversation variables a finished chatflow turn reported (its message_end), kept on
    its conversation for Dify's variables API; part of the caller's transaction."""
    await conn.execute(_RECORD_TURN_VARIABLES, run_id, json.dumps(values))


def check_user(user: str | None) -> str:
    if not isinstance(user, str) or not user.strip() or len(user) > 255:
        raise BadRequest("user is required (1 to 255 characters)", field="user")
    return user


class Conversations:
    def __init__(self, pool: asyncpg.Pool, reads: Reads | None = None):
        self.pool = pool
        # Lists and history read the replica (loom_common.read_replica), scoped by app: a run or
        # a change through the app's key marks it written, so its caller reads it back.
        self.reads = reads or Reads(pool)

    async def end_user(self, tenant_id: str, app_id: str, user: str | None, *, create: bool = True,
                       pool: asyncpg.Pool | None = None) -> str | None:
        session = check_user(user)
        found = await (pool or self.pool).fetchval("SELECT id FROM end_users WHERE app_id = $1 AND session_id = $2",
                                         app_id, session)
        if found or not create:
            return found
        return await self.pool.fetchval(
            "INSERT INTO end_users (id, tenant_id, app_id, session_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (app_id, session_id) DO UPDATE SET session_id = EXCLUDED.session_id RETURNING id",
            new_id(), tenant_id, app_id, session)

    async def end_user_detail(self, tenant_id: str, app_id: str, end_user_id: str) -> dict:
        """Dify's EndUserDetail of one of this app's end users (404 for any other app's or tenant's)."""
        row = await self.pool.fetchrow("SELECT id, tenant_id, app_id, session_id, created_at FROM end_users"
                                       " WHERE id = $1 AND tenant_id = $2 AND app_id = $3",
                                       end_user_id, tenant_id, app_id)
        if row is None:
            raise NotFound("End user not found.", code="end_user_not_found")
        created = row["created_at"].isoformat()
        return {"id": row["id"], "tenant_id": row["tenant_id"], "app_id": row["app_id"], "type": "service_api",
                "external_user_id": row["session_id"], "name": None, "is_anonymous": False,
                "session_id": row["session_id"], "created_at": created, "updated_at": created}

    async def list(self, app_id: str, user: str | None, last_id: str | None, limit: int, sort_by: str) -> dict:
        pool = self.reads.pool(app_id)
        end_user = await self.end_user("", app_id, user, create=False, pool=pool)
        if end_user is None and pool is not self.pool:  # a new end user the replica has not got yet
            pool = self.pool
            end_user = await self.end_user("", app_id, user, create=False, pool=pool)
        order = {"created_at": "created_at ASC", "-created_at": "created_at DESC",
                 "updated_at": "updated_at ASC", "-updated_at": "updated_at DESC"}.get(sort_by)
        if order is None:
            raise BadRequest("sort_by must be one of created_at, -created_at, updated_at, -updated_at",
                             field="sort_by")
        if end_user is None:
            return {"limit": limit, "has_more": False, "data": []}
        rows = await pool.fetch(f"SELECT {_CONV} FROM conversations WHERE app_id = $1 AND end_user_id = $2"
                                f" AND deleted_at IS NULL ORDER BY {order}, id", app_id, end_user)
        if last_id:
            ids = [r["id"] for r in rows]
            if last_id not in ids:
                raise NotFound("Last Conversation Not Exists.", code="not_found")
            rows = rows[ids.index(last_id) + 1:]
        return {"limit": limit, "has_more": len(rows) > limit, "data": [conversation_body(r) for r in rows[:limit]]}

    async def _owned(self, app_id: str, user: str | None, conversation_id: str,
                     pool: asyncpg.Pool | None = None) -> str:
        pool = pool or self.pool
        end_user = await self.end_user("", app_id, user, create=False, pool=pool)
        found = await pool.fetchval("SELECT id FROM conversations WHERE id = $1 AND app_id = $2 AND"
                                         " end_user_id = $3 AND deleted_at IS NULL", conversation_id, app_id,
                                         end_user)
        if found is None:
            raise NotFound("Conversation Not Exists.", code="conversation_not_exists")
        return found

    async def first_query(self, app_id: str, user: str | None, conversation_id: str) -> str:
        """The query that started the caller's conversation (NotFound unless it is theirs)."""
        await self._owned(app_id, user, conversation_id)
        return await self.pool.fetchval("SELECT query FROM messages WHERE conversation_id = $1"
                                        " ORDER BY created_at LIMIT 1", conversation_id) or ""

    async def rename(self, app_id: str, user: str | None, conversation_id: str, name: str | None) -> dict:
        await self._owned(app_id, user, conversation_id)
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name is required when auto_generate is false", field="name")
        row = await self.pool.fetchrow(f"UPDATE conversations SET name = $2, updated_at = now() WHERE id = $1"
                                       f" RETURNING {_CONV}", conversation_id, name.strip())
        return conversation_body(row)

    async def variables(self, app_id: str, user: str | None, conversation_id: str, declared: list[dict],
                        last_id: str | None, limit: int, name: str | None) -> dict:
        """The conversation's variables (those the app declares), as its latest finished turn left
        them (the orchestrator reports them in message_end), else their declared defaults."""
        await self._owned(app_id, user, conversation_id)
        row = await self.pool.fetchrow("SELECT variables, created_at, GREATEST(variables_at, variables_set_at)"
                                       " AS updated_at FROM conversations WHERE id = $1", conversation_id)
        stored = json.loads(row["variables"])
        created = int(row["created_at"].timestamp())
        updated = int(row["updated_at"].timestamp()) if row["updated_at"] else created
        items = [variable_body(app_id, v, stored.get(v["name"], v.get("value")), created, updated)
                 for v in declared if not name or v["name"] == name]
        if last_id:
            ids = [v["id"] for v in items]
            if last_id not in ids:
                raise NotFound("Last Variable Not Exists.", code="not_found")
            items = items[ids.index(last_id) + 1:]
        return {"limit": limit, "has_more": len(items) > limit, "data": items[:limit]}

    async def set_variable(self, app_id: str, user: str | None, conversation_id: str, declared: list[dict],
                           var_id: str, value: object) -> dict:
        """Set one of the conversation's variables (Dify's PUT .../variables/{id}). The value is
        shown at once and sent with the conversation's next run request, whose orchestrator
        takes it over the value it kept (the orchestrator owns the conversation's state)."""
        await self._owned(app_id, user, conversation_id)
        var = next((v for v in declared if variable_id(app_id, v) == var_id), None)
        if var is None:
            raise NotFound("Conversation Variable Not Exists.", code="conversation_variable_not_exists")
        check_value(var.get("value_type", "string"), value)
        one = json.dumps({var["name"]: value})
        row = await self.pool.fetchrow(
            "UPDATE conversations SET variables = variables || $2::jsonb,"
            " variables_set = COALESCE(variables_set, '{}') || $2::jsonb, variables_set_at = now()"
            " WHERE id = $1 AND deleted_at IS NULL RETURNING created_at, variables_set_at", conversation_id, one)
        if row is None:  # deleted meanwhile
            raise NotFound("Conversation Not Exists.", code="conversation_not_exists")
        return variable_body(app_id, var, value, int(row["created_at"].timestamp()),
                             int(row["variables_set_at"].timestamp()))

    async def delete(self, app_id: str, user: str | None, conversation_id: str) -> None:
        await self._owned(app_id, user, conversation_id)
        await self.pool.execute("UPDATE conversations SET deleted_at = now() WHERE id = $1", conversation_id)

    async def messages(self, app_id: str, user: str | None, conversation_id: str | None, first_id: str | None,
                       limit: int) -> dict:
        if not conversation_id:
            raise BadRequest("conversation_id is required", field="conversation_id")
        pool = self.reads.pool(app_id)
        try:
            await self._owned(app_id, user, conversation_id, pool)
        except NotFound:
            if pool is self.pool:
                raise
            # Not on the replica: maybe opened a moment ago through another gateway replica.
            pool = self.pool
            await self._owned(app_id, user, conversation_id, pool)
        before = None
        if first_id:
            before = await pool.fetchval("SELECT created_at FROM messages WHERE id = $1 AND conversation_id"
                                              " = $2", first_id, conversation_id)
            if before is None:
                raise NotFound("First Message Not Exists.", code="first_message_not_exists")
        rows = await pool.fetch(f"SELECT {_MSG} FROM messages WHERE conversation_id = $1 AND"
                                f" ($2::timestamptz IS NULL OR created_at < $2) ORDER BY created_at DESC"
                                f" LIMIT $3", conversation_id, before, limit + 1)
        page = list(reversed(rows[:limit]))
        return {"limit": limit, "has_more": len(rows) > limit, "data": [message_body(r) for r in page]}

    async def feedback(self, app_id: str, user: str | None, message_id: str, rating: str | None,
                       content: str | None) -> None:
        if rating not in ("like", "dislike", None):
            raise BadRequest("rating must be 'like', 'dislike' or null", field="rating")
        end_user = await self.end_user("", app_id, user, create=False)
        status = await self.pool.execute("UPDATE messages SET feedback_rating = $4, feedback_content = $5"
                                         " WHERE id = $1 AND app_id = $2 AND end_user_id = $3",
                                         message_id, app_id, end_user, rating, content)
        if status == "UPDATE 0":
            raise NotFound("Message Not Exists.", code="message_not_exists")

    async def turns_until(self, app_id: str, user: str | None, message_id: str, count: int) -> list[tuple[str, str]]:
        """The caller's message and up to count-1 turns of its conversation before it, oldest
        first, as (query, answer); NotFound unless the message is the caller's."""
        end_user = await self.end_user("", app_id, user, create=False)
        rows = await self.pool.fetch(
            "SELECT m.query, m.answer FROM messages m JOIN messages mine ON mine.conversation_id = m.conversation_id"
            " JOIN conversations c ON c.id = mine.conversation_id AND c.deleted_at IS NULL"
            " WHERE mine.id = $1 AND mine.app_id = $2 AND mine.end_user_id = $3 AND m.created_at <= mine.created_at"
            " ORDER BY m.created_at DESC LIMIT $4", message_id, app_id, end_user, count)
        if not rows:
            raise NotFound("Message Not Exists.", code="message_not_exists")
        return [(r["query"] or "", r["answer"] or "") for r in reversed(rows)]

    async def feedbacks(self, app_id: str, page: int, limit: int) -> dict:
        rows = await self.pool.fetch("SELECT id, conversation_id, feedback_rating, feedback_content, created_at"
                                     " FROM messages WHERE app_id = $1 AND feedback_rating IS NOT NULL ORDER BY"
                                     " created_at DESC OFFSET $2 LIMIT $3", app_id, (page - 1) * limit, limit)
        return {"data": [{"message_id": r["id"], "conversation_id": r["conversation_id"],
                          "rating": r["feedback_rating"], "content": r["feedback_content"],
                          "created_at": int(r["created_at"].timestamp())} for r in rows]}
