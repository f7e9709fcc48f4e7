"""Paused runs in Postgres: human-input forms, the run's pause, the answer that resumes it, and
the timer that times forms out.

    a node asks        ask(): the form row is written once (pending, deadline = now + wait)
                       (statuses: pending | answered | timed_out | closed, by a stopped run)
    the run pauses     pause(): runs.status = paused, the message is acked, no worker holds it
    an answer comes    take(): the first answer (or timeout) of a pending form wins; the run is
                       resumed by the request that carried it when the run is paused, or by a
                       redelivery of that same request; otherwise the running run finds it
    the timer ticks    due(): pending forms past their deadline, each handed out once a minute
                       at most (SKIP LOCKED: two orchestrators never take the same row at once)

`pause` and `take` both lock the run's row, so an answer landing while the run is still
executing is never lost: either the run's pause sees the answer (and the worker executes the
run again at once) or the answer sees the run paused (and resumes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from loom_common.errors import Superseded
from loom_common.events import HumanInputAnswer, RunRequested
from loom_orchestrator.engine.pause import FormState


@dataclass(frozen=True)
class DueForm:
    run_id: str
    tenant_id: str
    form_id: str
    node_key: str


class PgHumanInputs:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ask(self, run_id: str, tenant_id: str, form_id: str, node_key: str, node_id: str,
                  form: dict[str, Any], wait_s: int) -> FormState:
        row = await self.pool.fetchrow(
            """WITH new AS (
                   INSERT INTO human_inputs (form_id, run_id, tenant_id, node_key, node_id, form, deadline)
                   VALUES ($1, $2, $3, $4, $5, $6::jsonb,
                           CASE WHEN $7::int > 0 THEN now() + make_interval(secs => $7::int) END)
                   ON CONFLICT (form_id) DO NOTHING
                   RETURNING status, answer, action, deadline, answered_by)
               SELECT * FROM new
               UNION ALL SELECT status, answer, action, deadline, answered_by FROM human_inputs
                WHERE form_id = $1 AND tenant_id = $3
               LIMIT 1""",
            form_id, run_id, tenant_id, node_key, node_id, json.dumps(form, ensure_ascii=False), wait_s)
        deadline = row["deadline"]
        return FormState(form_id, row["status"], json.loads(row["answer"]) if row["answer"] else {},
                         row["action"] or "source", deadline.timestamp() if deadline else None,
                         row["answered_by"] or "")

    async def pause(self, run_id: str, form_ids: list[str], *, delivery: int) -> bool:
        """Record the run as paused; False (nothing written) when one of its forms was answered or
        timed out meanwhile: the run is to be executed again now. The delivery number is reset:
        the request that resumes the run is a new JetStream message (delivery 1)."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval("SELECT status FROM runs WHERE id = $1 FOR UPDATE", run_id)
            if status is None:
                raise Superseded(f"run {run_id}: not recorded")
            settled = await conn.fetchval(
                "SELECT count(*) FROM human_inputs WHERE form_id = ANY($1::text[]) AND status <> 'pending'", form_ids)
            if settled:
                return False
            done = await conn.execute(
                "UPDATE runs SET status = 'paused', paused_at = now(), claimed_delivery = 0, updated_at = now()"
                " WHERE id = $1 AND claimed_delivery <= $2", run_id, delivery)
            if done == "UPDATE 0":
                raise Superseded(f"run {run_id}: delivery {delivery} is stale, a later delivery claimed the run")
            return True

    async def take(self, tenant_id: str, run_id: str, answer: HumanInputAnswer) -> bool:
        """Apply the answer (or timeout) to its form if still pending; True when this request is
        the one to resume the run (see the module doc)."""
        async with self.pool.acquire() as conn, conn.transaction():
            run = await conn.fetchrow(
                "SELECT r.status, r.resumed_for FROM runs r JOIN human_inputs h ON h.run_id = r.id"
                " WHERE r.id = $1 AND h.form_id = $2 AND h.tenant_id = $3 FOR UPDATE OF r",
                run_id, answer.form_id, tenant_id)
            if run is None:
                return False  # no such form of this run and tenant
            await conn.execute(
                "UPDATE human_inputs SET status = $2, answer = $3::jsonb, action = $4, answered_by = $5,"
                " answered_at = now() WHERE form_id = $1 AND status = 'pending'",
                answer.form_id, "timed_out" if answer.timed_out else "answered",
                json.dumps(answer.values, ensure_ascii=False), answer.action, answer.answered_by)
            if run["status"] == "paused":
                await conn.execute(
                    "UPDATE runs SET resumed_for = $2, paused_s = paused_s + GREATEST(0, extract(epoch FROM"
                    " now() - coalesce(paused_at, now()))), paused_at = NULL, updated_at = now() WHERE id = $1",
                    run_id, answer.form_id)
                return True
            return run["status"] == "running" and run["resumed_for"] == answer.form_id

    async def take_for_stop(self, run_id: str, worker: str) -> tuple[RunRequested, float] | None:
        """A paused run to stop: marked running for `worker` (so one worker of those that heard
        the stop ends it), its stored request and when it was accepted; None if not paused."""
        row = await self.pool.fetchrow(
            """WITH run AS (
                   UPDATE runs SET status = 'running', worker = $2, paused_at = NULL, updated_at = now()
                   WHERE id = $1 AND status = 'paused'
                   RETURNING id, request, extract(epoch FROM created_at)::float8 AS accepted),
               closed AS (  -- its forms will never be answered now
                   UPDATE human_inputs SET status = 'closed'
                   WHERE run_id IN (SELECT id FROM run) AND status = 'pending')
               SELECT request, accepted FROM run""",
            run_id, worker)
        if row is None:
            return None
        return RunRequested.model_validate_json(row["request"]), float(row["accepted"])

    async def stored_request(self, tenant_id: str, run_id: str) -> RunRequested:
        """The run's own first request (graph, inputs, conversation): what a resumed run executes."""
        raw = await self.pool.fetchval("SELECT request FROM runs WHERE id = $1 AND tenant_id = $2",
                                       run_id, tenant_id)
        return RunRequested.model_validate_json(raw)

    async def due(self, now: float, limit: int = 100, resend_after_s: float = 60.0) -> list[DueForm]:
        """Pending forms whose deadline (epoch `now`, the caller's clock) has passed, marked as
        handed out; one handed out less than `resend_after_s` ago is not handed out again."""
        rows = await self.pool.fetch(
            """UPDATE human_inputs SET timer_sent_at = to_timestamp($1)
               WHERE form_id IN (
                   SELECT form_id FROM human_inputs h
                    WHERE status = 'pending' AND deadline IS NOT NULL AND deadline <= to_timestamp($1)
                      AND (timer_sent_at IS NULL OR timer_sent_at <= to_timestamp($1) - make_interval(secs => $3))
                      -- a form left open by a run that ended otherwise (stopped, failed) is not timed out
                      AND EXISTS (SELECT 1 FROM runs r WHERE r.id = h.run_id AND r.status IN ('paused', 'running'))
                    ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED)
               RETURNING run_id, tenant_id, form_id, node_key""",
            now, limit, resend_after_s)
        return [DueForm(r["run_id"], r["tenant_id"], r["form_id"], r["node_key"]) for r in rows]
