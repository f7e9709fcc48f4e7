"""The run claim on the real Postgres: one statement records or re-counts the run, marks it
running, keeps a finished run's status, opens a chat's conversation (turns, variables,
tenant check), and refuses a stale delivery (fencing by delivery number); a chat's turn is
kept (before its end is announced) and the outcome recorded, fenced alike. The claim commits unflushed: the run's next
journal write flushes it, or else a fenced touch of its row (`ClaimFlush`)."""

from __future__ import annotations

import asyncio

import pytest

from loom_common.errors import Superseded
from loom_common.events import RunRequested
from loom_common.ids import new_id
from loom_orchestrator.engine.ports import NodeRecord
from loom_orchestrator.store import ClaimFlush, PgJournal, PgRunStore, SavedTurn
from loom_orchestrator.workflow import RunOutcome

pytestmark = pytest.mark.integration


def _request(tenant: str = "t1", conversation_id: str | None = None, query: str = "q") -> RunRequested:
    return RunRequested(tenant_id=tenant, run_id=new_id(), app_id="app", app_mode="chatflow", query=query,
                        conversation_id=conversation_id)


async def test_claim_records_recounts_and_keeps_a_finished_run(pool) -> None:
    store = PgRunStore(pool)
    req = _request()
    first = await store.claim(req, None, "w1")
    assert first.created and first.status == "running" and first.accepted_epoch > 0
    again = await store.claim(req, None, "w2")
    assert not again.created and again.status == "running" and again.accepted_epoch == first.accepted_epoch
    row = await pool.fetchrow("SELECT deliveries, worker FROM runs WHERE id = $1", req.run_id)
    assert (row["deliveries"], row["worker"]) == (2, "w2")
    await store.finish(req.run_id, RunOutcome("succeeded"))
    late = await store.claim(req, None, "w3")
    assert late.status == "succeeded"  # a redelivery of a finished run does not revive it
    assert await pool.fetchval("SELECT worker FROM runs WHERE id = $1", req.run_id) == "w2"


async def test_claim_opens_the_conversation_with_its_turns_and_checks_the_tenant(pool) -> None:
    store = PgRunStore(pool)
    conv = new_id()
    first = await store.claim(_request(conversation_id=conv), None, "w", chat=True)
    assert first.history == [] and first.variables == {}
    for i in range(3):
        req = _request(conversation_id=conv, query=f"q{i}")
        claim = await store.claim(req, None, "w", chat=True)
        assert [t.query for t in claim.history] == [f"q{j}" for j in range(i)]  # oldest first
        await store.keep_turn(req.run_id, SavedTurn("t1", conv, req.query, f"a{i}", 3, {"n": i}))
        await store.finish(req.run_id, RunOutcome("succeeded", answer=f"a{i}"))
    last = await store.claim(_request(conversation_id=conv), None, "w", chat=True, max_turns=2)
    assert [(t.query, t.answer) for t in last.history] == [("q1", "a1"), ("q2", "a2")]
    assert last.variables == {"n": 2}
    with pytest.raises(PermissionError):
        await store.claim(_request(tenant="t2", conversation_id=conv), None, "w", chat=True)
    # Not a chat: the conversation is left alone.
    other = new_id()
    plain = await store.claim(_request(conversation_id=other), None, "w", chat=False)
    assert plain.history == [] and await pool.fetchval("SELECT count(*) FROM conversations WHERE id = $1", other) == 0


async def test_claim_is_fenced_by_delivery_number(pool) -> None:
    store = PgRunStore(pool)
    req = _request(conversation_id=new_id())
    assert (await store.claim(req, None, "w2", chat=True, delivery=2)).created
    with pytest.raises(Superseded):  # delivery 1 was held past the ack wait: delivery 2 owns the run
        await store.claim(req, None, "w1", chat=True, delivery=1)
    row = await pool.fetchrow("SELECT deliveries, worker, claimed_delivery FROM runs WHERE id = $1", req.run_id)
    assert (row["deliveries"], row["worker"], row["claimed_delivery"]) == (1, "w2", 2)  # untouched
    again = await store.claim(req, None, "w2b", chat=True, delivery=2)  # the same number still claims
    taken = await store.claim(req, None, "w3", chat=True, delivery=3)  # delivery 2's worker died: 3 takes over
    assert not again.created and not taken.created and taken.status == "running"
    row = await pool.fetchrow("SELECT deliveries, worker, claimed_delivery FROM runs WHERE id = $1", req.run_id)
    assert (row["deliveries"], row["worker"], row["claimed_delivery"]) == (3, "w3", 3)
    # A stale delivery of a new chat opens no conversation.
    stale = _request(conversation_id=new_id())
    await store.claim(stale.model_copy(update={"conversation_id": None}), None, "w", delivery=5)
    with pytest.raises(Superseded):
        await store.claim(stale, None, "w", chat=True, delivery=4)
    assert await pool.fetchval("SELECT count(*) FROM conversations WHERE id = $1", stale.conversation_id) == 0


async def test_the_turn_and_the_outcome_are_fenced_by_delivery_number(pool) -> None:
    """A worker that lost its lease (stalled while delivery 2 took the run) can keep neither the
    chat's turn nor the outcome."""
    store = PgRunStore(pool)
    conv = new_id()
    req = _request(conversation_id=conv)
    await store.claim(req, None, "w1", chat=True, delivery=1)
    await store.claim(req, None, "w2", chat=True, delivery=2)
    with pytest.raises(Superseded):
        await store.keep_turn(req.run_id, SavedTurn("t1", conv, "q", "from the stalled worker", 3, {"who": "stalled"}),
                              delivery=1)
    with pytest.raises(Superseded):
        await store.finish(req.run_id, RunOutcome("succeeded", answer="from the stalled worker"), delivery=1)
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", req.run_id) == 0
    assert await pool.fetchval("SELECT variables FROM conversations WHERE id = $1", conv) == "{}"
    await store.keep_turn(req.run_id, SavedTurn("t1", conv, "q", "from its owner", 3, {"who": "owner"}), delivery=2)
    await store.finish(req.run_id, RunOutcome("succeeded", answer="from its owner"), delivery=2)
    row = await pool.fetchrow("SELECT status, answer FROM runs WHERE id = $1", req.run_id)
    assert (row["status"], row["answer"]) == ("succeeded", "from its owner")
    # A redelivery that keeps the turn again keeps it once.
    await store.keep_turn(req.run_id, SavedTurn("t1", conv, "q", "from its owner", 3, {"who": "owner"}), delivery=2)
    again = await store.claim(_request(conversation_id=conv), None, "w", chat=True)
    assert [(t.query, t.answer) for t in again.history] == [("q", "from its owner")]
    assert again.variables == {"who": "owner"}


async def test_a_run_whose_events_were_lost_takes_its_turn_back(pool) -> None:
    store = PgRunStore(pool)
    conv = new_id()
    req = _request(conversation_id=conv)
    await store.claim(req, None, "w", chat=True)
    await store.keep_turn(req.run_id, SavedTurn("t1", conv, "q", "a", 3, {}))
    await store.note_lost_events(req.run_id, "lost")
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", req.run_id) == 0
    with pytest.raises(Superseded):
        await store.note_lost_events(req.run_id, "lost", delivery=0)


async def test_a_claim_is_flushed_by_the_runs_next_journal_write_or_else_by_a_fenced_touch(pool) -> None:
    store = PgRunStore(pool)
    req = _request()
    await store.claim(req, None, "w1", delivery=1)
    flushed = ClaimFlush(pool, req.run_id, 1)
    journal = PgJournal(pool, "t1", fresh=True, flush=flushed)
    await journal.started(req.run_id, NodeRecord(key="llm", node_id="llm", node_type="llm", status="running"))
    await flushed.wait()
    assert flushed.flushed and flushed.touches == 0  # the note's synchronous commit flushed the claim
    untouched = ClaimFlush(pool, req.run_id, 1)  # no write of the run since: one of its own
    await untouched.wait()
    await untouched.wait()
    assert untouched.flushed and untouched.touches == 1
    await store.claim(req, None, "w2", delivery=2)
    with pytest.raises(Superseded):  # a stale delivery learns it here too
        await ClaimFlush(pool, req.run_id, 1).wait()


async def test_a_claim_waits_for_a_journal_write_in_flight_rather_than_touching_the_run(pool) -> None:
    """The run's first events may be ready while the LLM node's note is still in flight (a model
    that answers within a round trip): the claim is flushed by that note, not by a write of its
    own, unless the note fails."""
    store = PgRunStore(pool)
    req = _request()
    await store.claim(req, None, "w1", delivery=1)

    async def write(flush: ClaimFlush, started: asyncio.Event, done: asyncio.Event, fails: bool) -> None:
        async with flush.writing():
            started.set()
            await done.wait()
            if fails:
                raise ConnectionError("the note was not written")

    for fails, touches in ((False, 0), (True, 1)):
        flush, started, done = ClaimFlush(pool, req.run_id, 1), asyncio.Event(), asyncio.Event()
        note = asyncio.create_task(write(flush, started, done, fails))
        await started.wait()
        waiting = asyncio.create_task(flush.wait())
        for _ in range(3):
            await asyncio.sleep(0)
        assert not waiting.done()  # waits for the note ...
        done.set()
        await asyncio.gather(note, return_exceptions=True)
        await waiting
        assert flush.flushed and flush.touches == touches  # ... and touches the row only when it failed
