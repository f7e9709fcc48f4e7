"""Paused runs on the real NATS JetStream and Postgres with the orchestrator as a process: the
run pauses (recorded `paused`, its message acked: nothing held while it waits), an answer
resumes it with the values as the node's outputs, a duplicate answer changes nothing, the
timer (driven here with an injected clock) takes the timeout branch, a paused run can be
stopped, and an answer that lands while the run is pausing is not lost."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from orchestrator_testkit import BusClient, edge, node, tpl

from loom_common import bus
from loom_common.events import HumanInputAnswer, RunRequested
from loom_common.ids import new_id
from loom_orchestrator.human_inputs import PgHumanInputs
from loom_orchestrator.human_timer import resume_request, tick
from loom_orchestrator.store import PgRunStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GRAPH = {"nodes": [node("start", "start"),
                   node("h", "human-input", form_content="approve?",
                        fields=[{"name": "reply", "type": "paragraph"}],
                        user_actions=[{"id": "ok", "title": "OK"}], timeout=1, timeout_unit="hour"),
                   tpl("said", "human said: {{ r }}", r=["h", "reply"]),
                   tpl("late", "timed out: {{ t }}", t=["h", "timed_out"]),
                   node("end", "end", outputs=[{"variable": "said", "value_selector": ["said", "output"]},
                                               {"variable": "late", "value_selector": ["late", "output"]}])],
         "edges": [edge("start", "h"), edge("h", "said", "ok"), edge("h", "late", "timeout"),
                   edge("said", "end"), edge("late", "end")]}


async def _status(database_url: str, run_id: str) -> str | None:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT status FROM orchestrator.runs WHERE id = $1", run_id)
    finally:
        await conn.close()


async def _paused(database_url: str, run_id: str) -> None:
    """The pause is recorded just after its events are published."""
    for _ in range(300):
        if await _status(database_url, run_id) == "paused":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} never recorded as paused")


async def _unacked(client: BusClient) -> int:
    c = bus.ORCHESTRATOR_RUNS
    info = await client.broker.connection.jetstream().consumer_info(c.stream.name, c.durable)
    return info.num_ack_pending + info.num_pending


async def _publish(client: BusClient, req: RunRequested) -> None:
    from loom_common import messaging

    await messaging.publish(client.broker, bus.RUNS_REQUESTED, req, stream=bus.RUNS.name)


async def test_a_paused_run_holds_nothing_and_an_answer_resumes_it(nats_url, database_url, run_service) -> None:
    run_service("orchestrator")
    async with BusClient(nats_url) as client:
        run_id = await client.request(GRAPH)
        paused = await client.events(run_id, until="workflow_paused")
        required = next(e for e in paused if e.event == "human_input_required").data
        await _paused(database_url, run_id)
        for _ in range(100):  # the ack follows the pause's record
            if await _unacked(client) == 0:
                break
            await asyncio.sleep(0.1)
        assert await _unacked(client) == 0
        answer = HumanInputAnswer(form_id=required.form_id, node_key="h", values={"reply": "yes"}, action="ok",
                                  answered_by="test")
        await _publish(client, resume_request("t-svc", run_id, answer))
        events = await client.events(run_id)
        # The same answer again (another id, as a second gateway would send it) changes nothing.
        again = answer.model_copy(update={"values": {"reply": "changed"}})
        await _publish(client, RunRequested(tenant_id="t-svc", run_id=run_id, app_id="", resume=again))
        await asyncio.sleep(1.0)
        after = await client.all_events(run_id)
    names = [e.event for e in events]
    assert names.count("workflow_paused") == 1 and "workflow_resumed" in names
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].data.status == "succeeded"
    assert events[-1].data.outputs == {"said": "human said: yes", "late": None}
    assert len(after) == len(events)
    assert await _status(database_url, run_id) == "succeeded"


async def test_the_timer_takes_the_timeout_branch(nats_url, database_url, run_service, pool) -> None:
    run_service("orchestrator")
    async with BusClient(nats_url) as client:
        run_id = await client.request(GRAPH)
        await client.events(run_id, until="workflow_paused")
        forms = PgHumanInputs(pool)
        assert await tick(forms, client.broker, time.time()) == 0  # an hour early: nothing is due
        assert await tick(forms, client.broker, time.time() + 2 * 3600) >= 1  # the clock, moved on
        events = await client.events(run_id)
    assert events[-1].data.outputs == {"said": None, "late": "timed out: True"}
    human = next(e for e in events if e.event == "node_finished" and e.data.node_id == "h")
    assert human.data.outputs["timed_out"] is True


async def test_a_paused_run_can_be_stopped(nats_url, database_url, run_service, pool) -> None:
    run_service("orchestrator")
    async with BusClient(nats_url) as client:
        run_id = await client.request(GRAPH)
        await client.events(run_id, until="workflow_paused")
        await client.cancel(run_id)  # paused or about to be: either way the stop ends it
        events = await client.events(run_id)
        # Its form is not timed out later (the run is over).
        assert await tick(PgHumanInputs(pool), client.broker, time.time() + 2 * 3600) == 0
    assert events[-1].data.status == "stopped"
    assert await _status(database_url, run_id) == "stopped"


async def test_an_answer_that_lands_while_the_run_pauses_is_not_lost(pool) -> None:
    """Postgres only: the race the worker's pause loop handles (human_inputs.py's module doc)."""
    forms, store = PgHumanInputs(pool), PgRunStore(pool)
    req = RunRequested(tenant_id="t1", run_id=new_id(), app_id="app", graph=GRAPH)
    await store.claim(req, None, "w1")
    form_id = new_id()
    state = await forms.ask(req.run_id, "t1", form_id, "h", "h", {"fields": []}, 60)
    assert state.status == "pending" and state.deadline is not None
    answer = HumanInputAnswer(form_id=form_id, node_key="h", values={"reply": "x"}, action="ok")
    assert not await forms.take("t1", req.run_id, answer)  # the run still runs: this request does not resume it
    assert not await forms.pause(req.run_id, [form_id], delivery=1)  # ... and the pause sees the answer
    assert (await forms.ask(req.run_id, "t1", form_id, "h", "h", {}, 60)).values == {"reply": "x"}
    # Another tenant's answer finds no form.
    assert not await forms.take("t2", req.run_id, answer)
    # A run paused on a pending form is resumed by the answer's request, and by its redelivery only.
    other = new_id()
    await forms.ask(req.run_id, "t1", other, "h2", "h2", {}, 0)
    assert await forms.pause(req.run_id, [other], delivery=1)
    assert await pool.fetchval("SELECT status FROM runs WHERE id = $1", req.run_id) == "paused"
    second = HumanInputAnswer(form_id=other, node_key="h2", values={}, action="source")
    assert await forms.take("t1", req.run_id, second)
    await store.claim(req, None, "w2")
    assert await forms.take("t1", req.run_id, second)  # a redelivery of the resuming request
    assert not await forms.take("t1", req.run_id, answer)  # an older form's late request does not
    assert await forms.due(time.time() + 10 * 86400) == []  # answered forms never time out
