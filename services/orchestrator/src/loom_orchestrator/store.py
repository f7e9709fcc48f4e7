"""Postgres persistence (the orchestrator's own schema): runs, the node journal, and
chatflow conversations with their messages and variables (read by the claim, kept with the
outcome).

Every query filters on tenant_id where the row is tenant-owned.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from loom_common.errors import Superseded
from loom_common.events import RunRequested
from loom_orchestrator.engine.context import Turn
from loom_orchestrator.engine.ports import NodeRecord

TERMINAL = ("succeeded", "partial-succeeded", "failed", "stopped")
# Not terminal: `paused` (waiting for a human-input answer, see human_inputs.py).


def _j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Claim:
    created: bool  # this delivery recorded the run: nothing of it was journaled or published before
    status: str  # after the claim: running, or the terminal status of a run already finished
    accepted_epoch: float  # when the run was first recorded
    paused_s: float = 0.0  # time it spent paused on human-input forms, so far
    history: list[Turn] = field(default_factory=list)  # the conversation's last turns, oldest first
    variables: dict[str, Any] = field(default_factory=dict)  # the conversation's variables
    # Set when an earlier delivery gave up on some of the run's events (`note_lost_events`): the run fails.
    lost_events: str | None = None


_TERMINAL_SQL = "('succeeded','partial-succeeded','failed','stopped')"

# One statement, so one round trip and one connection per run start (what a run waits for
# before its first node): record the run or count a redelivery and mark it running (a
# finished run keeps its terminal status); for a chat, also create the conversation when new
# and read its variables and last turns. The conversation part reads the statement's
# snapshot, which misses a conversation another transaction created meanwhile: `claim`
# then reads it again.
# Fencing: the row keeps the highest JetStream delivery number that claimed it; the update
# only happens for a delivery numbered at least that (the row lock serialises two claims), so
# a stale delivery (one a worker held past the ack wait while JetStream redelivered it)
# changes nothing, returns no row, and is told so (`Superseded`).
# Durability: the claim commits without waiting for its WAL flush (synchronous_commit off for
# this one transaction), which took an fsync, 2-7 ms, off the path to the first token: the run
# starts (the model's prefill runs) while the claim is written out. Nothing that depends on it
# leaves the worker before it is on disk (`ClaimFlush`): the run's events wait for it, and every
# other write of the run is a synchronous commit made after it (WAL is flushed in order).
_CLAIM = f"""
WITH claim AS (
    INSERT INTO runs (id, tenant_id, app_id, status, request, trace_id, conversation_id, worker, claimed_delivery)
    VALUES ($1, $2, $3, 'running', $4::jsonb, $5, $6, $7, $10)
    ON CONFLICT (id) DO UPDATE SET deliveries = runs.deliveries + 1, updated_at = now(),
        claimed_delivery = EXCLUDED.claimed_delivery,
        status = CASE WHEN runs.status IN {_TERMINAL_SQL} THEN runs.status ELSE 'running' END,
        worker = CASE WHEN runs.status IN {_TERMINAL_SQL} THEN runs.worker ELSE EXCLUDED.worker END
    WHERE runs.claimed_delivery <= EXCLUDED.claimed_delivery
    RETURNING (xmax = 0) AS created, status, extract(epoch FROM created_at)::float8 AS accepted_epoch, paused_s,
              lost_events
), new_conversation AS (
    INSERT INTO conversations (id, tenant_id, app_id) SELECT $6, $2, $3 WHERE $8 AND EXISTS (SELECT 1 FROM claim)
    ON CONFLICT (id) DO NOTHING RETURNING tenant_id, variables
), conversation AS (
    SELECT tenant_id, variables FROM new_conversation
    UNION ALL SELECT tenant_id, variables FROM conversations WHERE $8 AND id = $6
    LIMIT 1
)
SELECT claim.*, conversation.tenant_id AS conversation_tenant, conversation.variables,
       set_config('synchronous_commit', 'off', true) AS unflushed_commit,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(m.query, m.answer) ORDER BY m.created_at), '[]'::jsonb)
          FROM (SELECT query, answer, created_at FROM messages
                 WHERE $8 AND conversation_id = $6 AND tenant_id = $2
                 ORDER BY created_at DESC LIMIT $9) m) AS history
FROM claim LEFT JOIN conversation ON true
"""


class PgRunStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, event: RunRequested, trace_id: str | None, worker: str, *, chat: bool = False,
                    max_turns: int = 500, delivery: int = 1) -> Claim:
        """Take the run for `worker` as JetStream delivery number `delivery`; with `chat`, open
        its conversation too (see `_CLAIM`). Raises Superseded when a higher-numbered delivery
        already claimed the run, PermissionError when the conversation belongs to another tenant."""
        with_conversation = chat and bool(event.conversation_id)
        row = await self.pool.fetchrow(_CLAIM, event.run_id, event.tenant_id, event.app_id, event.model_dump_json(),
                                       trace_id, event.conversation_id, worker, with_conversation, max_turns,
                                       delivery)
        if row is None:
            raise Superseded(f"run {event.run_id}: delivery {delivery} is stale, a later delivery claimed the run")
        claim = Claim(bool(row["created"]), row["status"], float(row["accepted_epoch"]), float(row["paused_s"]),
                      lost_events=row["lost_events"])
        if not with_conversation:
            return claim
        owner, variables = row["conversation_tenant"], row["variables"]
        if owner is None:  # created by a concurrent transaction after this statement's snapshot
            again = await self.pool.fetchrow("SELECT tenant_id, variables FROM conversations WHERE id = $1",
                                             event.conversation_id)
            owner, variables = again["tenant_id"], again["variables"]
        if owner != event.tenant_id:
            raise PermissionError(f"conversation {event.conversation_id} belongs to another tenant")
        turns = [Turn(q, a) for q, a in json.loads(row["history"])]
        return dataclasses.replace(claim, history=turns, variables=json.loads(variables))

    async def record_requested(self, event: RunRequested, trace_id: str | None) -> bool:
        inserted = await self.pool.fetchval(
            """INSERT INTO runs (id, tenant_id, app_id, status, request, trace_id, conversation_id)
               VALUES ($1, $2, $3, 'accepted', $4::jsonb, $5, $6)
               ON CONFLICT (id) DO UPDATE SET deliveries = runs.deliveries + 1, updated_at = now()
               RETURNING (xmax = 0)""",
            event.run_id, event.tenant_id, event.app_id, event.model_dump_json(), trace_id, event.conversation_id)
        return bool(inserted)

    async def keep_turn(self, run_id: str, turn: SavedTurn, *, delivery: int = 1) -> None:
        """Keep a chat's turn and the conversation's variables after it, before the run announces
        its end (message_end): a client that asks its next question as soon as it reads that
        event must find this turn in the conversation. Fenced like `finish`; a redelivery that
        keeps the turn again keeps it once (the turn's id is the run's)."""
        done = await self.pool.fetchval(_KEEP_TURN, run_id, delivery, turn.tenant_id, turn.conversation_id,
                                        turn.query, turn.answer, turn.tokens, _j(turn.variables))
        if not done:
            raise Superseded(f"run {run_id}: delivery {delivery} is stale, a later delivery claimed the run")

    async def note_lost_events(self, run_id: str, reason: str, *, delivery: int = 1) -> None:
        """Journal that the run's events were not all stored, before its outcome is published: a
        redelivery (the outcome not published either) cannot see which events are missing, and
        fails the run with `reason` instead of replaying it to a success. A chat's turn, kept
        before the end was announced (`keep_turn`), is taken back: the run did not succeed (the
        conversation's variables stay as it left them). Fenced like `finish`."""
        done = await self.pool.fetchval(_NOTE_LOST_EVENTS, run_id, reason, delivery)
        if not done:
            raise Superseded(f"run {run_id}: delivery {delivery} is stale, a later delivery claimed the run")

    async def finish(self, run_id: str, outcome: Any, *, delivery: int = 1) -> None:
        """Record the outcome, fenced like the claim: refused (Superseded) when a higher-numbered
        delivery has claimed the run since (this worker stalled past its lease)."""
        done = await self.pool.fetchval(_FINISH, run_id, outcome.status, _j(outcome.outputs), outcome.answer,
                                        outcome.error, outcome.prompt_tokens, outcome.completion_tokens,
                                        outcome.steps, outcome.elapsed_s, delivery)
        if not done:
            raise Superseded(f"run {run_id}: delivery {delivery} is stale, a later delivery claimed the run")


class ClaimFlush:
    """When a run's claim (committed unflushed, see `_CLAIM`) is on disk. A synchronous commit
    made after the claim returned flushes it too: the run's journal wraps each of its writes in
    `writing()` (the LLM node's note, made alongside the model call, is one), and `wait` waits
    for a write in flight rather than making its own; it makes one only when none was made or
    all failed: a fenced touch of the run's row, so a stale delivery learns it here too
    (`Superseded`)."""

    def __init__(self, pool: asyncpg.Pool, run_id: str, delivery: int) -> None:
        self.pool, self.run_id, self.delivery = pool, run_id, delivery
        self.flushed = False
        self.touches = 0  # flushes this made itself (tests)
        self._in_flight = 0
        self._ended = asyncio.Event()  # a write in flight ended (committed or not)

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """A synchronous write of the run in flight: once it commits, the claim is on disk."""
        self._in_flight += 1
        try:
            yield
            self.flushed = True
        finally:
            self._in_flight -= 1
            self._ended.set()

    async def wait(self) -> None:
        while not self.flushed and self._in_flight:
            self._ended.clear()
            await self._ended.wait()
        if self.flushed:
            return
        self.touches += 1
        done = await self.pool.execute(
            "UPDATE runs SET updated_at = now() WHERE id = $1 AND claimed_delivery <= $2", self.run_id,
            self.delivery)
        if done == "UPDATE 0":
            raise Superseded(f"run {self.run_id}: delivery {self.delivery} is stale, a later delivery claimed the run")
        self.flushed = True


@dataclass(frozen=True)
class SavedTurn:
    """A chat run's turn (`PgRunStore.keep_turn`): the query, the answer, and the conversation's
    variables after it."""

    tenant_id: str
    conversation_id: str
    query: str
    answer: str
    tokens: int
    variables: dict[str, Any]


_FINISH = """WITH fin AS (
    UPDATE runs SET status = $2, outputs = $3::jsonb, answer = $4, error = $5, prompt_tokens = $6,
                    completion_tokens = $7, total_steps = $8, elapsed_s = $9, updated_at = now(),
                    finished_at = now() WHERE id = $1 AND claimed_delivery <= $10 RETURNING id
)
SELECT count(*) FROM fin"""
# The run's row is read FOR SHARE: a claim by a later delivery (an update of the row) waits for
# this statement, or this one sees the later number and keeps nothing. Committed without waiting
# for its WAL flush, like the claim: the next question's claim sees it at once, and the outcome's
# write (synchronous, after it) flushes it; a crash before that redelivers the run, whose next
# delivery keeps the turn again.
_KEEP_TURN = """
WITH run AS (
    SELECT id, set_config('synchronous_commit', 'off', true) FROM runs WHERE id = $1 AND claimed_delivery <= $2
       FOR SHARE
), turn AS (
    INSERT INTO messages (id, conversation_id, tenant_id, query, answer, tokens)
    SELECT $1, $4, $3, $5, $6, $7 FROM run ON CONFLICT (id) DO NOTHING
), variables AS (
    UPDATE conversations SET variables = $8::jsonb, updated_at = now()
     WHERE id = $4 AND tenant_id = $3 AND EXISTS (SELECT 1 FROM run)
)
SELECT count(*) FROM run
"""
_NOTE_LOST_EVENTS = """
WITH noted AS (
    UPDATE runs SET lost_events = $2, updated_at = now() WHERE id = $1 AND claimed_delivery <= $3 RETURNING id
), turn AS (
    DELETE FROM messages WHERE id IN (SELECT id FROM noted)
)
SELECT count(*) FROM noted
"""


class PgJournal:
    """`Journal` on the node_executions table. `fresh`: the run was recorded by this very
    delivery, so it has no node records yet and loading them is skipped. `flush`: the run's
    claim's, told of each write (`ClaimFlush.writing`)."""

    def __init__(self, pool: asyncpg.Pool, tenant_id: str, *, fresh: bool = False,
                 guard: Callable[[], None] | None = None, flush: ClaimFlush | None = None) -> None:
        self.pool, self.tenant_id, self.fresh = pool, tenant_id, fresh
        self._guard = guard or (lambda: None)  # raises once this worker no longer holds the run
        self._flush = flush

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        self._guard()
        async with self._flush.writing() if self._flush is not None else contextlib.nullcontext():
            yield

    async def load(self, run_id: str) -> dict[str, NodeRecord]:
        if self.fresh:
            return {}
        rows = await self.pool.fetch("SELECT * FROM node_executions WHERE run_id = $1 AND tenant_id = $2",
                                     run_id, self.tenant_id)
        return {r["key"]: NodeRecord(
            key=r["key"], node_id=r["node_id"], node_type=r["node_type"], status=r["status"], starts=r["starts"],
            inputs=json.loads(r["inputs"] or "{}"), process_data=json.loads(r["process_data"] or "{}"),
            outputs=json.loads(r["outputs"] or "{}"), edge_handle=r["edge_handle"],
            writes=json.loads(r["writes"] or "[]"), error=r["error"], elapsed_ms=r["elapsed_ms"] or 0.0,
            prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"], index=r["idx"],
            version=r["node_version"], **_effects_of(r["effects"]))
            for r in rows}

    async def started(self, run_id: str, record: NodeRecord) -> int:
        async with self._writing():
            return await self.pool.fetchval(
            """INSERT INTO node_executions (run_id, key, tenant_id, node_id, node_type, idx, status, node_version)
               VALUES ($1, $2, $3, $4, $5, $6, 'running', $7)
               ON CONFLICT (run_id, key) DO UPDATE SET starts = node_executions.starts + 1, status = 'running',
                   idx = EXCLUDED.idx, node_version = EXCLUDED.node_version, started_at = now()
               RETURNING starts""",
            run_id, record.key, self.tenant_id, record.node_id, record.node_type, record.index, record.version)

    async def finished(self, run_id: str, r: NodeRecord) -> None:
        async with self._writing():
            await self.pool.execute(_FINISHED, *self._finished_args(run_id, r))

    async def finished_many(self, run_id: str, records: list[NodeRecord]) -> None:
        async with self._writing():
            await self.pool.executemany(_FINISHED, [self._finished_args(run_id, r) for r in records])

    def _finished_args(self, run_id: str, r: NodeRecord) -> tuple:
        return (run_id, r.key, self.tenant_id, r.node_id, r.node_type, r.index, r.status, _j(r.inputs),
                _j(r.process_data), _j(r.outputs), r.edge_handle, _j(r.writes), r.error, r.elapsed_ms,
                r.prompt_tokens, r.completion_tokens, r.version, _j(_effects(r)))


def _effects(r: NodeRecord) -> dict[str, Any]:
    """What the node did to the run (see NodeResult), as the `effects` column keeps it: only
    what differs from nothing, so most rows hold `{}`."""
    out: dict[str, Any] = {}
    if r.answer is not None:
        out["answer"] = r.answer
    if r.citations:
        out["citations"] = r.citations
    if r.run_outputs is not None:
        out["run_outputs"] = r.run_outputs
    if r.loop_end:
        out["loop_end"] = True
    return out


def _effects_of(column: str | None) -> dict[str, Any]:
    kept = json.loads(column or "{}")
    return {k: kept[k] for k in ("answer", "citations", "run_outputs", "loop_end") if k in kept}


_FINISHED = """INSERT INTO node_executions (run_id, key, tenant_id, node_id, node_type, idx, status, inputs,
                   process_data, outputs, edge_handle, writes, error, elapsed_ms, prompt_tokens, completion_tokens,
                   node_version, effects, finished_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10::jsonb, $11, $12::jsonb, $13, $14,
                       $15, $16, $17, $18::jsonb, now())
               ON CONFLICT (run_id, key) DO UPDATE SET status = EXCLUDED.status, inputs = EXCLUDED.inputs,
                   process_data = EXCLUDED.process_data, outputs = EXCLUDED.outputs,
                   edge_handle = EXCLUDED.edge_handle, writes = EXCLUDED.writes, error = EXCLUDED.error,
                   elapsed_ms = EXCLUDED.elapsed_ms, prompt_tokens = EXCLUDED.prompt_tokens,
                   completion_tokens = EXCLUDED.completion_tokens, node_version = EXCLUDED.node_version,
                   effects = EXCLUDED.effects, finished_at = now()"""
