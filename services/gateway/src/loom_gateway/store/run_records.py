"""The rows a run start writes (end user, conversation, run, message), in ONE statement.

Starting a run sits on the path to the first token, and every round trip to Postgres there is
a wake-up of another process on a busy box: one statement of data-modifying CTEs replaces the
eight round trips (and pool resets) of writing them one by one, and is atomic by itself.

    new_user   the end user, unless (app, session) exists already
    end_user   that row's id either way
    old_conv   an existing conversation of this end user, touched (NULL id: none asked for), with
               the variables a client set through the API that no turn has taken up yet
    new_conv   a new conversation, when the caller asked for one (chat apps without an id)
    run        the run; not written when an asked-for conversation is not theirs
    msg        the message (chat and completion apps; NULL message id: none)

No row back means: the named conversation is not this end user's, or (rarely) a concurrent
first request of the same end user inserted it after this statement's snapshot was taken; the
caller tries once more, and the second try sees the committed row.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from loom_gateway.store.conversations import record_turn_variables

_START = """
WITH new_user AS (
    INSERT INTO end_users (id, tenant_id, app_id, session_id) VALUES ($1, $2, $3, $4)
    ON CONFLICT (app_id, session_id) DO NOTHING RETURNING id),
end_user AS (
    SELECT id FROM new_user
    UNION ALL SELECT id FROM end_users WHERE app_id = $3 AND session_id = $4
    LIMIT 1),
old_conv AS (
    UPDATE conversations SET updated_at = now()
    WHERE $5::text IS NOT NULL AND id = $5 AND app_id = $3 AND end_user_id = (SELECT id FROM end_user)
      AND deleted_at IS NULL
    RETURNING id, variables_set),
new_conv AS (
    INSERT INTO conversations (id, tenant_id, app_id, end_user_id, name, inputs)
    SELECT $6, $2, $3, id, $7, $8::jsonb FROM end_user WHERE $6::text IS NOT NULL
    RETURNING id),
run AS (
    INSERT INTO runs (id, tenant_id, app_id, app_version, mode, end_user_id, conversation_id, message_id, inputs,
                      invoke_from)
    SELECT $9, $2, $3, $10, $11, u.id, COALESCE((SELECT id FROM old_conv), (SELECT id FROM new_conv)), $12, $8::jsonb,
           $15
    FROM end_user u WHERE $5::text IS NULL OR EXISTS (SELECT 1 FROM old_conv)
    RETURNING id, end_user_id, conversation_id),
msg AS (
    INSERT INTO messages (id, tenant_id, app_id, conversation_id, run_id, end_user_id, query, inputs, files)
    SELECT $12, $2, $3, conversation_id, id, end_user_id, $13, $8::jsonb, $14::jsonb FROM run
    WHERE $12::text IS NOT NULL
    RETURNING id)
SELECT end_user_id, conversation_id, (SELECT variables_set FROM old_conv) AS variables_set FROM run
"""


@dataclass(frozen=True)
class RunStart:
    run_id: str
    tenant_id: str
    app_id: str
    app_version: int | None
    mode: str
    session: str                      # the caller's `user`
    new_end_user_id: str              # used when the end user is new
    conversation_id: str | None       # an existing conversation to continue
    new_conversation_id: str | None   # or a new one to open (chat apps)
    conversation_name: str
    inputs: dict
    message_id: str | None            # chat and completion apps
    query: str
    files: list
    invoke_from: str = "service-api"  # or debugger / single-node (the console's runs of the draft)


@dataclass(frozen=True)
class Written:
    end_user_id: str
    conversation_id: str | None
    variables_set: dict | None  # conversation variables set through the API, for the run request


async def write(pool: asyncpg.Pool, s: RunStart) -> Written | None:
    """Write the rows; None when nothing was written."""
    args = (s.new_end_user_id, s.tenant_id, s.app_id, s.session, s.conversation_id, s.new_conversation_id,
            s.conversation_name, json.dumps(s.inputs), s.run_id, s.app_version, s.mode, s.message_id, s.query,
            json.dumps(s.files), s.invoke_from)
    for _ in range(2):
        row = await pool.fetchrow(_START, *args)
        if row is not None:
            pending = row["variables_set"]
            return Written(row["end_user_id"], row["conversation_id"], json.loads(pending) if pending else None)
    return None


# ---- after the start: a run's state, its outcome, and the reads of its row ------------------

Pool = asyncpg.Pool
Settle = Callable[[asyncpg.Connection], Awaitable[object]]


async def mark_paused(pool: asyncpg.Pool, run_id: str) -> bool:
    """True when this call paused it."""
    done = await pool.execute("UPDATE runs SET status = 'paused' WHERE id = $1 AND status = 'running'", run_id)
    return done == "UPDATE 1"


async def exists(pool: asyncpg.Pool, run_id: str) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM runs WHERE id = $1)", run_id))


# The run and its message in one statement that also says whether the run's row exists and
# whether a token reservation is still held for it.
_RECORD_END = (
    "WITH run AS (UPDATE runs SET status = $2, outputs = $3::jsonb, error = $4, total_tokens = $5,"
    " total_steps = $6, finished_at = now(),"
    " first_token_ms = GREATEST(0, EXTRACT(EPOCH FROM $7::timestamptz - created_at) * 1000)"
    " WHERE id = $1 AND status IN ('running', 'paused')"
    " RETURNING message_id, tenant_id, app_id, invoke_from),"
    " message AS (UPDATE messages SET answer = $8, status = $9, error = $4, metadata = $10::jsonb"
    " FROM run WHERE messages.id = run.message_id RETURNING messages.id)"
    " SELECT run.*, (SELECT count(*) FROM message) AS messages,"
    " EXISTS (SELECT 1 FROM runs WHERE id = $1) AS known,"
    " EXISTS (SELECT 1 FROM token_reservations WHERE run_id = $1) AS reserved"
    " FROM (SELECT 1) AS one LEFT JOIN run ON true")


async def record_end(pool: asyncpg.Pool, run_id: str, *, status: str, outputs: Any, error: str | None,
                     total_tokens: int, total_steps: int, first_text_at: datetime | None, answer: str,
                     metadata: dict, conversation_variables: dict | None, settle: Settle | None) -> Any:
    """Store a run's end, once: the first writer of a final state wins (None for the others),
    with its message's answer and the conversation variables of its turn; then `settle` its
    token reservation while one is held. Returns (the run's row, what `settle` returned, whether
    the run has a row at all: False when its write is not committed yet).

    Usually one round trip: the end is one statement, committed alone (a transaction's BEGIN and
    COMMIT are round trips of their own; only a turn's variables, written with the end, need
    one), and the reservation is settled apart, in a transaction of its own, only when one is
    held. Whichever writer finds it held settles it (its DELETE ... RETURNING hands it to one
    writer only), so one that crashed between the two leaves it to the end's next writer (the
    durable outcome consumer's redelivery)."""
    args = (run_id, status, json.dumps(outputs) if outputs is not None else None, error, total_tokens, total_steps,
            first_text_at, answer, "normal" if status == "succeeded" else status, json.dumps(metadata))
    held = None
    async with pool.acquire() as conn:
        with_turn = conversation_variables is not None
        async with conn.transaction() if with_turn else contextlib.nullcontext():
            row = await conn.fetchrow(_RECORD_END, *args)
            if with_turn and row["tenant_id"] is not None and row["message_id"]:
                await record_turn_variables(conn, run_id, conversation_variables)
        if settle is not None and row["reserved"]:
            async with conn.transaction():
                held = await settle(conn)
    if row["tenant_id"] is None:  # not this writer's: recorded already, or no row (yet)
        return None, held, row["known"]
    return row, held, True


async def status(pool: asyncpg.Pool, tenant_id: str, app_id: str, run_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT mode, status FROM runs WHERE id = $1 AND tenant_id = $2 AND app_id = $3",
                               run_id, tenant_id, app_id)


async def get(pool: asyncpg.Pool, tenant_id: str, app_id: str, run_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM runs WHERE id = $1 AND tenant_id = $2 AND app_id = $3",
                               run_id, tenant_id, app_id)


async def ids(pool: asyncpg.Pool, tenant_id: str, app_id: str, limit: int, invoke_from: str | None) -> list[str]:
    """The app's runs, newest first: those of `invoke_from`, else all but single-node runs."""
    rows = await pool.fetch(
        "SELECT id FROM runs WHERE tenant_id = $1 AND app_id = $2 AND"
        " CASE WHEN $4::text IS NULL THEN invoke_from <> 'single-node'"
        " ELSE invoke_from = $4 END ORDER BY created_at DESC LIMIT $3", tenant_id, app_id, limit, invoke_from)
    return [r["id"] for r in rows]
