"""Postgres persistence (the orchestrator's own schema): runs, the node journal, and
chatflow conversations with their messages and variables.

Every query filters on tenant_id where the row is tenant-owned.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from loom_common.events import RunRequested
from loom_orchestrator.engine.context import Turn
from loom_orchestrator.engine.ports import NodeRecord

TERMINAL = ("succeeded", "partial-succeeded", "failed", "stopped")


def _j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class PgRunStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record_requested(self, event: RunRequested, trace_id: str | None) -> bool:
        inserted = await self.pool.fetchval(
            """INSERT INTO runs (id, tenant_id, app_id, status, request, trace_id, conversation_id)
               VALUES ($1, $2, $3, 'accepted', $4::jsonb, $5, $6)
               ON CONFLICT (id) DO UPDATE SET deliveries = runs.deliveries + 1, updated_at = now()
               RETURNING (xmax = 0)""",
            event.run_id, event.tenant_id, event.app_id, event.model_dump_json(), trace_id, event.conversation_id)
        return bool(inserted)

    async def get(self, run_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT *, extract(epoch FROM created_at) AS accepted_epoch "
                                        "FROM runs WHERE id = $1", run_id)

    async def mark_running(self, run_id: str, worker: str) -> None:
        await self.pool.execute("UPDATE runs SET status = 'running', worker = $2, updated_at = now() "
                                "WHERE id = $1 AND status NOT IN ('succeeded','partial-succeeded','failed','stopped')",
                                run_id, worker)

    async def finish(self, run_id: str, outcome: Any) -> None:
        await self.pool.execute(
            """UPDATE runs SET status = $2, outputs = $3::jsonb, answer = $4, error = $5, prompt_tokens = $6,
                      completion_tokens = $7, total_steps = $8, elapsed_s = $9, updated_at = now(),
                      finished_at = now() WHERE id = $1""",
            run_id, outcome.status, _j(outcome.outputs), outcome.answer, outcome.error, outcome.prompt_tokens,
            outcome.completion_tokens, outcome.steps, outcome.elapsed_s)


class PgJournal:
    """`Journal` on the node_executions table."""

    def __init__(self, pool: asyncpg.Pool, tenant_id: str) -> None:
        self.pool, self.tenant_id = pool, tenant_id

    async def load(self, run_id: str) -> dict[str, NodeRecord]:
        rows = await self.pool.fetch("SELECT * FROM node_executions WHERE run_id = $1 AND tenant_id = $2",
                                     run_id, self.tenant_id)
        return {r["key"]: NodeRecord(
            key=r["key"], node_id=r["node_id"], node_type=r["node_type"], status=r["status"], starts=r["starts"],
            inputs=json.loads(r["inputs"] or "{}"), process_data=json.loads(r["process_data"] or "{}"),
            outputs=json.loads(r["outputs"] or "{}"), edge_handle=r["edge_handle"],
            writes=json.loads(r["writes"] or "[]"), error=r["error"], elapsed_ms=r["elapsed_ms"] or 0.0,
            prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"], index=r["idx"])
            for r in rows}

    async def started(self, run_id: str, record: NodeRecord) -> int:
        return await self.pool.fetchval(
            """INSERT INTO node_executions (run_id, key, tenant_id, node_id, node_type, idx, status)
               VALUES ($1, $2, $3, $4, $5, $6, 'running')
               ON CONFLICT (run_id, key) DO UPDATE SET starts = node_executions.starts + 1, status = 'running',
                   idx = EXCLUDED.idx, started_at = now()
               RETURNING starts""",
            run_id, record.key, self.tenant_id, record.node_id, record.node_type, record.index)

    async def finished(self, run_id: str, r: NodeRecord) -> None:
        await self.pool.execute(
            """INSERT INTO node_executions (run_id, key, tenant_id, node_id, node_type, idx, status, inputs,
                   process_data, outputs, edge_handle, writes, error, elapsed_ms, prompt_tokens, completion_tokens,
                   finished_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10::jsonb, $11, $12::jsonb, $13, $14,
                       $15, $16, now())
               ON CONFLICT (run_id, key) DO UPDATE SET status = EXCLUDED.status, inputs = EXCLUDED.inputs,
                   process_data = EXCLUDED.process_data, outputs = EXCLUDED.outputs,
                   edge_handle = EXCLUDED.edge_handle, writes = EXCLUDED.writes, error = EXCLUDED.error,
                   elapsed_ms = EXCLUDED.elapsed_ms, prompt_tokens = EXCLUDED.prompt_tokens,
                   completion_tokens = EXCLUDED.completion_tokens, finished_at = now()""",
            run_id, r.key, self.tenant_id, r.node_id, r.node_type, r.index, r.status, _j(r.inputs),
            _j(r.process_data), _j(r.outputs), r.edge_handle, _j(r.writes), r.error, r.elapsed_ms,
            r.prompt_tokens, r.completion_tokens)


class PgConversations:
    """Chatflow memory: the turns and variables of a conversation."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def open(self, tenant_id: str, app_id: str, conversation_id: str, *, max_turns: int = 500
                   ) -> tuple[list[Turn], dict[str, Any]]:
        await self.pool.execute("INSERT INTO conversations (id, tenant_id, app_id) VALUES ($1, $2, $3) "
                                "ON CONFLICT (id) DO NOTHING", conversation_id, tenant_id, app_id)
        variables = await self.pool.fetchval("SELECT variables FROM conversations WHERE id = $1 AND tenant_id = $2",
                                             conversation_id, tenant_id)
        if variables is None:
            raise PermissionError(f"conversation {conversation_id} belongs to another tenant")
        rows = await self.pool.fetch(
            "SELECT query, answer FROM (SELECT query, answer, created_at FROM messages WHERE conversation_id = $1 "
            "AND tenant_id = $2 ORDER BY created_at DESC LIMIT $3) m ORDER BY created_at",
            conversation_id, tenant_id, max_turns)
        return [Turn(r["query"], r["answer"]) for r in rows], json.loads(variables)

    async def save_turn(self, tenant_id: str, conversation_id: str, run_id: str, query: str, answer: str,
                        tokens: int, variables: dict[str, Any]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO messages (id, conversation_id, tenant_id, query, answer, tokens) "
                               "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                               run_id, conversation_id, tenant_id, query, answer, tokens)
            await conn.execute("UPDATE conversations SET variables = $3::jsonb, updated_at = now() "
                               "WHERE id = $1 AND tenant_id = $2", conversation_id, tenant_id, _j(variables))
