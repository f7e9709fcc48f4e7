"""Durable run outcomes and the typed event contract as the gateway reads them, over the real
NATS and Postgres with the scripted orchestrator (which ends each run as the orchestrator does:
its events, then its outcome on runs.finished).

- a run no client watched (the stream closed at once) is recorded by the durable consumer
  (`bus/outcomes.py`), answer and tokens included, with no read route repairing it;
- an outcome delivered again, or a different end of the same run, changes nothing (exactly once);
- a stored event of the old untyped shape is read; one that fits no payload is refused with a
  clear error, on the bus feed and in the client's stream."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from gateway_testkit import make_app

from loom_common import bus, messaging
from loom_common.events import RunEventUnreadable, RunFinished
from loom_common.events.runs import Message
from loom_common.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def _row(gateway, run_id: str):
    return await gateway.rt.pool.fetchrow("SELECT status, total_tokens, finished_at FROM runs WHERE id = $1", run_id)


async def test_a_run_no_client_watched_is_recorded_by_the_durable_consumer(gateway, admin, orchestrator) -> None:
    c = gateway.client
    _, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as real:  # a real socket, closed at once
        async with real.stream("POST", "/v1/chat-messages", headers=h, json={
                "inputs": {}, "query": "slow please", "user": "u1", "response_mode": "streaming"}) as r:
            assert r.status_code == 200
    # The client is gone before the run's first token; no watcher follows it, and /messages
    # only reads: the row is brought to its end by runs.finished alone.
    [request] = await eventually(lambda: orchestrator.requests, "the orchestrator to take the run")
    run_id, conv = request.run_id, request.conversation_id

    async def ended():
        row = await _row(gateway, run_id)
        return row if row is not None and row["status"] != "running" else None

    row = await eventually(ended, "the run's outcome recorded from runs.finished", timeout_s=60)
    assert row["status"] == "succeeded" and row["total_tokens"] == 7
    msgs = (await c.get("/v1/messages", params={"user": "u1", "conversation_id": conv}, headers=h)).json()["data"]
    assert [(m["answer"], m["status"]) for m in msgs] == [("".join(f"tok{i} " for i in range(40)), "normal")]

    # Delivered again (same id), and a different end of the same run: the first record stands.
    first = row["finished_at"]
    for end in (RunFinished(event_id=f"{run_id}.succeeded.again", tenant_id=request.tenant_id,
                            run_id=run_id, status="succeeded", answer="other", usage={"total_tokens": 99}),
                RunFinished(tenant_id=request.tenant_id, run_id=run_id, status="failed",
                            error="late")):
        await messaging.publish(orchestrator.broker, bus.RUNS_FINISHED, end, stream=bus.RUN_OUTCOMES.name)

    async def consumed():
        info = await orchestrator.broker.connection.jetstream().consumer_info(
            bus.RUN_OUTCOMES.name, bus.GATEWAY_RUN_OUTCOMES.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0

    await eventually(consumed, "the repeated outcomes consumed")
    row = await _row(gateway, run_id)
    assert (row["status"], row["total_tokens"], row["finished_at"]) == ("succeeded", 7, first)
    msgs = (await c.get("/v1/messages", params={"user": "u1", "conversation_id": conv}, headers=h)).json()["data"]
    assert [m["answer"] for m in msgs] == ["".join(f"tok{i} " for i in range(40))]


async def test_an_old_shape_event_is_read_and_an_unreadable_one_refused_clearly(gateway, admin, orchestrator) -> None:
    """Events stored by the untyped publisher (version 1: `event` + a `data` dict) stay readable
    for the stream's 7 days; one whose data fits no payload is refused naming its seq and field,
    and a client's stream ends with an error event saying so (503), never a half-read event."""
    run_bus = gateway.rt.http.state.gw.execution.bus
    run_id = uuid.uuid4().hex
    js = orchestrator.broker.connection.jetstream()

    def old(seq: int, event: str, data: dict) -> bytes:
        return (f'{{"type": "run.event", "version": 1, "event_id": "{uuid.uuid4()}", "tenant_id": "t", '
                f'"occurred_at": "2026-01-01T00:00:00Z", "run_id": "{run_id}", "seq": {seq}, "task_id": "{run_id}", '
                f'"node_id": null, "event": "{event}", "data": {json.dumps(data)}}}').encode()

    await js.publish(bus.run_events(run_id), old(1, "message", {"answer": "kept", "message_id": "m"}),
                     stream=bus.RUN_EVENTS.name)
    await js.publish(bus.run_events(run_id), old(2, "message", {"answer": 3, "bogus": True}),
                     stream=bus.RUN_EVENTS.name)
    events = run_bus.events(run_id, follow=False)
    first = await anext(events)
    assert first.version == 2 and isinstance(first.data, Message) and first.data.answer == "kept"
    with pytest.raises(RunEventUnreadable, match=r"seq 2.*data\.message\.(answer|bogus)"):
        await anext(events)
    await events.aclose()

    # A client resuming a run whose stored event cannot be read: a clear error ends its stream.
    c = gateway.client
    _, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    r = await c.post("/v1/chat-messages", json={"inputs": {}, "query": "hi", "user": "u1",
                                                "response_mode": "blocking"}, headers=h)
    task = r.json()["task_id"]
    await js.publish(bus.run_events(task), old(99, "no_such_event", {}), stream=bus.RUN_EVENTS.name)
    r = await c.get(f"/v1/runs/{task}/events", headers={**h, "Last-Event-ID": "98"})
    last = [line for line in r.text.splitlines() if line.startswith("data: ")][-1]
    assert '"code": "service_unavailable"' in last and "cannot be read" in last and "no_such_event" in last



async def test_an_outcome_that_beats_its_runs_row_is_recorded_once_the_row_is_written(gateway, admin,
                                                                                       orchestrator) -> None:
    """A run's request is published alongside the write of its row, so a run that ends at once
    can report its end before that write commits. The consumer takes that outcome again until
    the row is there (it used to ack it as a no-op, and the run stayed `running` for good)."""
    from loom_common.ids import new_id
    from loom_gateway.store import run_records

    app_id, _ = await make_app(gateway.client, admin, "workflow")
    run_id = new_id()
    js = orchestrator.broker.connection.jetstream()
    before = (await js.consumer_info(bus.RUN_OUTCOMES.name, bus.GATEWAY_RUN_OUTCOMES.durable)).num_redelivered
    await messaging.publish(orchestrator.broker, bus.RUNS_FINISHED,
                            RunFinished(tenant_id=admin.workspace_id, run_id=run_id, status="succeeded",
                                        outputs={"answer": "early"}, usage={"total_tokens": 5}),
                            stream=bus.RUN_OUTCOMES.name)

    async def taken_again():
        info = await js.consumer_info(bus.RUN_OUTCOMES.name, bus.GATEWAY_RUN_OUTCOMES.durable)
        return info.num_redelivered > before

    await eventually(taken_again, "the outcome of a run without a row delivered again")
    assert await _row(gateway, run_id) is None
    await run_records.write(gateway.rt.pool, run_records.RunStart(
        run_id=run_id, tenant_id=admin.workspace_id, app_id=app_id, app_version=None, mode="workflow",
        session="u1", new_end_user_id=new_id(), conversation_id=None, new_conversation_id=None,
        conversation_name="", inputs={}, message_id=None, query="", files=[], invoke_from="webhook"))

    async def ended():
        row = await _row(gateway, run_id)
        return row if row is not None and row["status"] != "running" else None

    row = await eventually(ended, "the early outcome recorded once the row exists")
    assert (row["status"], row["total_tokens"]) == ("succeeded", 5)


async def test_a_reservation_left_by_a_recorder_that_died_is_settled_by_the_next_one(gateway, admin) -> None:
    """A run's end is one statement, committed alone; its token reservation is settled after it,
    in a transaction of its own. A recorder that dies in between leaves the reservation held, and
    the end's next recorder (the outcome consumer's redelivery) settles it, once."""
    import datetime

    from loom_common.ids import new_id
    from loom_gateway.store import limits, run_records

    app_id, _ = await make_app(gateway.client, admin, "workflow")
    pool, run_id, key_id, tenant = gateway.rt.pool, new_id(), new_id(), admin.workspace_id
    day = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    await run_records.write(pool, run_records.RunStart(
        run_id=run_id, tenant_id=tenant, app_id=app_id, app_version=None, mode="workflow",
        session="u1", new_end_user_id=new_id(), conversation_id=None, new_conversation_id=None,
        conversation_name="", inputs={}, message_id=None, query="", files=[], invoke_from="service-api"))
    await pool.execute("INSERT INTO token_reservations (run_id, key_id, tenant_id, day, tokens, scopes)"
                       " VALUES ($1, $2, $3, $4, 100, $5)", run_id, key_id, tenant, day, [f"key:{key_id}"])
    await pool.execute("INSERT INTO usage_counters (scope, metric, window_start, value) VALUES ($1, 'tokens', $2, 100)",
                       f"key:{key_id}", day)
    end = {"status": "succeeded", "outputs": {}, "error": None, "total_tokens": 30, "total_steps": 1,
           "first_text_at": None, "answer": "", "metadata": {}, "conversation_variables": None}

    async def dies(conn):
        raise ConnectionError("the gateway died before settling")

    with pytest.raises(ConnectionError):
        await run_records.record_end(pool, run_id, **end, settle=dies)
    assert (await _row(gateway, run_id))["status"] == "succeeded"  # the end is recorded
    assert await pool.fetchval("SELECT count(*) FROM token_reservations WHERE run_id = $1", run_id) == 1

    async def settle(conn):
        return await limits.settle_run(conn, run_id, 30)

    row, held, known = await run_records.record_end(pool, run_id, **end, settle=settle)
    assert (row, held, known) == (None, None, True)  # not this recorder's end, but its reservation
    assert await pool.fetchval("SELECT count(*) FROM token_reservations WHERE run_id = $1", run_id) == 0
    used = "SELECT value FROM usage_counters WHERE scope = $1 AND metric = 'tokens' AND window_start = $2"
    assert await pool.fetchval(used, f"key:{key_id}", day) == 30  # the 100 held became the 30 used
    assert await pool.fetchval(used, f"tenant:{tenant}", day) == 30  # (it held none of the workspace's)
    await run_records.record_end(pool, run_id, **end, settle=settle)  # once: nothing held any more
    assert await pool.fetchval(used, f"key:{key_id}", day) == 30
