"""Components killed in the middle of a live run, on the real stack (docs/reliability.md).

Each test gives the fault its own NATS (and Postgres or database where it matters: the session's
are shared by every test), real service processes, and, where the model is not the point, a
model stand-in (gRPC, in this process) that streams one token and then holds until the test
releases it, so the fault lands while the run is in flight. Each checks: the run is not lost (it
finishes, or fails naming the node where that is its policy), nothing is doubled (one
`message_end` / `workflow_finished`, seq 1..n once each), and prints the time from the fault to
the run's end (`recovery_s`). The gateway's test lives here too: it needs the orchestrator's
test kit, which a gateway test may not import (test_architecture)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from chat_stream import GATEWAY_CHAT, collect_sse
from orchestrator_testkit import CHAT_GRAPH, BusClient, chain, node, serve_held_model, tpl

from loom_common import bus
from loom_common.db import _with_database
from loom_common.devstack import infra
from loom_common.events import read_run_events
from loom_common.ids import new_id
from loom_common.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

sys.path.insert(0, str(Path(__file__).parents[1] / "services" / "gateway" / "tests"))
from gateway_stack import Stack, _sign_in, app_with_key  # noqa: E402  (the gateway tests' start-up helpers)


@pytest.fixture
def own_pg():
    # Not under pytest's tmp_path: Postgres runs as its own user when we are root, and pytest makes
    # /tmp/pytest-of-root private again whenever any pytest session starts.
    root = Path(tempfile.mkdtemp(prefix="loom-test-"))
    server = infra.EmbeddedPostgres(root / "pg").start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


async def _chat(client: BusClient) -> str:
    return await client.request(CHAT_GRAPH, app_mode="chatflow", query="hi", conversation_id=new_id())


async def _finished_row(database_url: str, run_id: str):
    async def finished():
        try:
            conn = await asyncpg.connect(database_url)
        except (OSError, asyncpg.PostgresError):
            return None  # not back yet
        try:
            row = await conn.fetchrow("SELECT status, answer, deliveries FROM orchestrator.runs WHERE id = $1", run_id)
        finally:
            await conn.close()
        return row if row is not None and row["status"] != "running" else None

    return await eventually(finished, f"run {run_id} recorded finished")


def _one_answer(events) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seqs not 1..n once each: {seqs}"
    names = [e.event for e in events]
    assert names.count("message_end") == 1 and names.count("workflow_finished") == 1, names


async def _jetstream_answers(client: BusClient) -> bool:
    try:
        await client.broker.connection.jetstream().stream_info("RUN_EVENTS")
        return True
    except Exception:
        return False


def _restart(server, sig: int = signal.SIGKILL, down_s: float = 0.0) -> None:
    infra.stop_process(server.proc, sig, 20)
    time.sleep(down_s)
    server.start()


async def test_nats_restarted_mid_run(own_nats, database_url, run_service) -> None:
    """NATS SIGKILLed while a run's model call is in flight, the rest of the run emitted while it
    is down for 6 s, then restarted on its file store: the streams and the durable consumer
    survive, the worker and the client reconnect, every event arrives once and in order, the run
    ends once, and a run requested after the restart is served."""
    async with serve_held_model() as model:
        orchestrator = run_service("orchestrator", env={"LOOM_NATS_URL": own_nats.url,
                                                        "LOOM_INFERENCE_ADDR": model.addr})
        async with BusClient(own_nats.url) as client:
            run_id = await _chat(client)
            await eventually(lambda: model.calls == 1, "the run's model call")
            t0 = time.monotonic()
            infra.stop_process(own_nats.proc, signal.SIGKILL)
            model.release.set()  # the rest of the run is emitted while NATS is down
            await asyncio.sleep(6.0)  # longer than the ack wait, and than the event publisher's retries once were
            own_nats.start()
            await eventually(lambda: _jetstream_answers(client), "this client to reconnect to JetStream")
            events = await client.events(run_id, until="message_end")
            row = await _finished_row(database_url, run_id)
            print(f"recovery_s={time.monotonic() - t0:.2f} (NATS restart -> run recorded finished), "
                  f"model calls {model.calls}, deliveries {row['deliveries']}")
            later = await _chat(client)
            assert (await client.events(later, until="message_end"))[-1].event == "message_end"
            replay = await client.all_events(run_id)  # the stream kept what was published before the kill
    _one_answer(events)
    assert [e.seq for e in replay] == [e.seq for e in events]
    assert row["status"] == "succeeded" and row["answer"].endswith("done")
    assert (await _finished_row(database_url, later))["status"] == "succeeded"
    assert orchestrator.proc.poll() is None, orchestrator.log()


def _long_loop(rounds: int) -> dict:
    """A workflow of `rounds` loop rounds (an assigner and a template each): thousands of
    journal writes, no other service."""
    return {"nodes": [node("start", "start"),
                      node("lp", "loop", loop_count=rounds, loop_variables=[{"label": "n", "value": 0}]),
                      node("ls", "loop-start", parent="lp"),
                      node("inc", "assigner", parent="lp",
                           items=[{"variable_selector": ["lp", "n"], "operation": "+=", "value": 1}]),
                      tpl("t", "{{n}}", n=["lp", "n"]) | {"parent_id": "lp"},
                      node("end", "end", outputs=[{"variable": "n", "value_selector": ["lp", "n"]}])],
            "edges": [*chain("start", "lp", "end"), *chain("ls", "inc", "t")]}


async def test_postgres_restarted_mid_run(own_nats, own_pg, run_service) -> None:
    """Postgres stopped at once (immediate shutdown: crash recovery at the next start), down for
    10 s, and restarted while a long run writes its journal: the worker waits the outage out
    (before: the message's 5 deliveries were spent in 7.5 s and the run dead-lettered, lost),
    its pool reconnects, the run resumes from the journal and ends once with the right result.
    (No gRPC server in this test's process: forking Postgres as its own user beside one can crash
    the child before it execs.)"""
    database_url = own_pg.url("loom_faults")
    rounds = 1000  # the most a loop node allows
    orchestrator = run_service("orchestrator", env={"LOOM_NATS_URL": own_nats.url, "LOOM_DATABASE_URL": database_url,
                                                    "LOOM_ORCHESTRATOR_MAX_STEPS": "100000"})
    async with BusClient(own_nats.url) as client:
        run_id = await client.request(_long_loop(rounds))
        js = client.broker.connection.jetstream()
        sub = await js.subscribe(bus.run_events(run_id), ordered_consumer=True)
        for _ in range(30):  # well into the loop
            await sub.next_msg(timeout=60)
        await sub.unsubscribe()
        # Down for 10 s: longer than the message's redeliveries with back-off last (0.5+1+2+4 s
        # for 5 deliveries), so the run survives only if the worker waits the outage out.
        await asyncio.to_thread(_restart, own_pg, signal.SIGQUIT, 10.0)
        back = time.monotonic()
        events = await client.events(run_id, timeout_s=120)
        row = await _finished_row(database_url, run_id)
        print(f"recovery_s={time.monotonic() - back:.2f} (Postgres accepting again -> run recorded finished, "
              f"the rest of the run included), claims {row['deliveries']}")
        later = await client.request(_long_loop(3))
        assert (await client.events(later))[-1].data.status == "succeeded"
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seqs not 1..n once each: {seqs}"
    assert [e.event for e in events].count("workflow_finished") == 1
    assert events[-1].data.status == "succeeded" and events[-1].data.outputs == {"n": rounds}
    assert row["status"] == "succeeded"
    assert orchestrator.proc.poll() is None, orchestrator.log()


def _real_chat(retry: dict | None) -> dict:
    """start -> llm (the bundled gemma3:270m, a long greedy answer cut at 48 tokens) -> answer."""
    llm = node("llm", "llm", model={"name": "gemma3:270m", "completion_params": {"temperature": 0, "max_tokens": 48}},
               prompt_template=[{"role": "user", "text": "Tell a very long story about a lighthouse."}])
    if retry is not None:
        llm["data"]["retry_config"] = retry
    return {"nodes": [node("start", "start"), llm, node("ans", "answer", answer="{{#llm.text#}}")],
            "edges": chain("start", "llm", "ans")}


async def test_inference_killed_mid_generation(own_nats, database_url, run_service) -> None:
    """The real inference service SIGKILLed while two runs generate: the run whose llm node has no
    retry policy fails at once, naming the node; the one with a retry policy retries until the
    restarted engine answers and succeeds. Neither hangs; each ends once. The tokens streamed
    before the kill stay streamed: `node_retry` tells the client that the text after it is the
    answer (the answer recorded is that text alone)."""
    grpc_port, http_port = infra.free_port(), infra.free_port()
    inference_env = {"LOOM_NATS_URL": own_nats.url, "LOOM_INFERENCE_GRPC_PORT": str(grpc_port),
                     "LOOM_INFERENCE_PERFORMANCE__MAX_PARALLEL": "2"}
    inference = run_service("inference", env=inference_env, http_port=http_port, timeout_s=180)
    run_service("orchestrator", env={"LOOM_NATS_URL": own_nats.url, "LOOM_INFERENCE_ADDR": f"127.0.0.1:{grpc_port}"})
    async with BusClient(own_nats.url) as client:
        plain = await client.request(_real_chat(None), app_mode="chatflow", query="go", conversation_id=new_id())
        patient = await client.request(_real_chat({"retry_enabled": True, "max_retries": 10, "retry_interval": 2000}),
                                       app_mode="chatflow", query="go", conversation_id=new_id())
        js = client.broker.connection.jetstream()
        for run_id in (plain, patient):  # both are generating
            sub = await js.subscribe(bus.run_events(run_id), ordered_consumer=True)
            while b'"data":{"type":"message"' not in (await sub.next_msg(timeout=120)).data:
                pass
            await sub.unsubscribe()
        inference.kill()
        t0 = time.monotonic()
        failed = await client.events(plain, timeout_s=60)
        print(f"failed_s={time.monotonic() - t0:.2f} (inference SIGKILL -> the run without retries failed)")
        run_service("inference", env=inference_env, http_port=http_port, timeout_s=180)
        retried = await client.events(patient, until="message_end", timeout_s=180)
        row = await _finished_row(database_url, patient)
        print(f"recovery_s={time.monotonic() - t0:.2f} (inference SIGKILL -> the retried run finished, the "
              f"engine's restart and model load included)")
    assert failed[-1].event == "workflow_finished" and failed[-1].data.status == "failed"
    assert "llm" in failed[-1].data.error
    assert [e.event for e in failed].count("workflow_finished") == 1
    _one_answer(retried)
    names = [e.event for e in retried]
    assert "node_retry" in names
    after_retry = retried[len(names) - 1 - names[::-1].index("node_retry"):]
    assert row["status"] == "succeeded"
    assert row["answer"] == "".join(e.data.answer for e in after_retry if e.event == "message")
    assert (await _finished_row(database_url, plain))["status"] == "failed"


def _slow_code(retry: dict | None) -> dict:
    code = node("code", "code", code="import time\n\ndef main():\n    time.sleep(3)\n    return {'ok': 1}",
                variables=[], outputs={"ok": {"type": "number"}})
    if retry is not None:
        code["data"]["retry_config"] = retry
    return {"nodes": [node("start", "start"), code,
                      node("end", "end", outputs=[{"variable": "ok", "value_selector": ["code", "ok"]}])],
            "edges": chain("start", "code", "end")}


async def _until_started(client: BusClient, run_id: str, node_id: str) -> None:
    sub = await client.broker.connection.jetstream().subscribe(bus.run_events(run_id), ordered_consumer=True)
    try:
        while True:
            for ev in read_run_events((await sub.next_msg(timeout=60)).data):  # one event or a batch
                if ev.event == "node_started" and ev.node_id == node_id:
                    return
    finally:
        await sub.unsubscribe()


async def test_tools_killed_mid_code_node(own_nats, database_url, run_service) -> None:
    """The tools service SIGKILLed while two runs' code nodes run in its sandbox: the node without
    a retry policy fails its run at once, naming the node; the one with retries runs again on the
    restarted service and its run succeeds. Neither hangs; each ends once."""
    grpc_port, http_port = infra.free_port(), infra.free_port()
    tools_env = {"LOOM_NATS_URL": own_nats.url, "LOOM_TOOLS_GRPC_PORT": str(grpc_port),
                 "LOOM_TOOLS_SANDBOX_ALLOW_DEGRADED": "true"}
    tools = run_service("tools", env=tools_env, http_port=http_port)
    run_service("orchestrator", env={"LOOM_NATS_URL": own_nats.url, "LOOM_TOOLS_ADDR": f"127.0.0.1:{grpc_port}"})
    async with BusClient(own_nats.url) as client:
        plain = await client.request(_slow_code(None))
        patient = await client.request(_slow_code({"retry_enabled": True, "max_retries": 10,
                                                   "retry_interval": 1000}))
        for run_id in (plain, patient):
            await _until_started(client, run_id, "code")
        await asyncio.sleep(0.5)  # inside the sandbox's 3 s
        tools.kill()
        t0 = time.monotonic()
        failed = await client.events(plain, timeout_s=60)
        print(f"failed_s={time.monotonic() - t0:.2f} (tools SIGKILL -> the run without retries failed)")
        run_service("tools", env=tools_env, http_port=http_port)
        retried = await client.events(patient, timeout_s=120)
        print(f"recovery_s={time.monotonic() - t0:.2f} (tools SIGKILL -> the retried run finished, the "
              f"service's restart included)")
    assert failed[-1].data.status == "failed" and "code" in failed[-1].data.error
    for events in (failed, retried):
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, len(seqs) + 1)) and [e.event for e in events].count("workflow_finished") == 1
    assert "node_retry" in [e.event for e in retried]
    assert retried[-1].data.status == "succeeded" and retried[-1].data.outputs == {"ok": 1}
    assert (await _finished_row(database_url, patient))["status"] == "succeeded"


def _retrieval(dataset_id: str, retry: dict | None) -> dict:
    kr = node("kr", "knowledge-retrieval", query_variable_selector=["sys", "query"], dataset_ids=[dataset_id],
              retrieval_mode="multiple", multiple_retrieval_config={"top_k": 1})
    if retry is not None:
        kr["data"]["retry_config"] = retry
    return {"nodes": [node("start", "start"), kr,
                      node("end", "end", outputs=[{"variable": "found", "value_selector": ["kr", "result"]}])],
            "edges": chain("start", "kr", "end")}


async def test_rag_killed_mid_retrieval(own_nats, database_url, run_service) -> None:
    """The rag service SIGKILLed while two runs' knowledge-retrieval nodes wait in it (for the
    query's embedding, held by the model stand-in): without a retry policy the run fails at once
    naming the node; with one, the node retrieves again from the restarted service and its run
    succeeds. Neither hangs; each ends once."""
    from loom.rag.v1 import rag_pb2 as pb
    from loom.rag.v1 import rag_pb2_grpc
    from loom_common.testing import service_channel

    grpc_port, http_port = infra.free_port(), infra.free_port()
    async with serve_held_model() as model:
        rag_env = {"LOOM_NATS_URL": own_nats.url, "LOOM_RAG_GRPC_PORT": str(grpc_port),
                   "LOOM_INFERENCE_ADDR": model.addr}
        rag = run_service("rag", env=rag_env, http_port=http_port)
        async with service_channel(f"127.0.0.1:{grpc_port}") as channel:
            dataset = await rag_pb2_grpc.DatasetsStub(channel).CreateDataset(pb.CreateDatasetRequest(
                tenant_id="t-svc", name="faults", embedding_model="fake-embed",
                embedding_dimension=model.EMBED_DIM))
        run_service("orchestrator", env={"LOOM_NATS_URL": own_nats.url, "LOOM_RAG_ADDR": f"127.0.0.1:{grpc_port}"})
        async with BusClient(own_nats.url) as client:
            plain = await client.request(_retrieval(dataset.id, None), query="gulls")
            patient = await client.request(_retrieval(dataset.id, {"retry_enabled": True, "max_retries": 10,
                                                                   "retry_interval": 1000}), query="gulls")
            await eventually(lambda: model.embeds == 2, "both retrievals to wait for their query's embedding")
            rag.kill()
            t0 = time.monotonic()
            model.release.set()
            failed = await client.events(plain, timeout_s=60)
            print(f"failed_s={time.monotonic() - t0:.2f} (rag SIGKILL -> the run without retries failed)")
            run_service("rag", env=rag_env, http_port=http_port)
            retried = await client.events(patient, timeout_s=120)
            print(f"recovery_s={time.monotonic() - t0:.2f} (rag SIGKILL -> the retried run finished, the "
                  f"service's restart included)")
    assert failed[-1].data.status == "failed" and "kr" in failed[-1].data.error
    for events in (failed, retried):
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, len(seqs) + 1)) and [e.event for e in events].count("workflow_finished") == 1
    assert "node_retry" in [e.event for e in retried]
    assert retried[-1].data.status == "succeeded" and retried[-1].data.outputs == {"found": []}
    assert model.embeds == 3  # the retry embedded the query again on the restarted service


# ---- the gateway --------------------------------------------------------------------------

async def test_gateway_killed_mid_stream_the_client_resumes_with_last_event_id(
        own_nats, database_url, run_service) -> None:
    """The gateway SIGKILLed in the middle of a streaming chat (real gateway and orchestrator on a
    database of this test's own): the client reconnects to the restarted gateway with
    `Last-Event-ID` and gets every event once, in order; the run is not disturbed."""
    db = _with_database(database_url, f"faults_{uuid.uuid4().hex[:10]}")
    async with serve_held_model() as model:
        env = {"LOOM_NATS_URL": own_nats.url, "LOOM_DATABASE_URL": db, "LOOM_INFERENCE_ADDR": model.addr}
        run_service("orchestrator", env=env)
        port, admin = infra.free_port(), infra.free_port()
        gateway_env = {**env, "LOOM_GATEWAY_ADMIN_PORT": str(admin)}
        gateway = run_service("gateway", env=gateway_env, http_port=port)
        stack = Stack(gateway_url=gateway.base_url, inference_addr=model.addr)
        _sign_in(stack)
        _, key = app_with_key(stack, "chatflow", GATEWAY_CHAT)
        headers = {"Authorization": f"Bearer {key}"}
        before: list[tuple[int, dict]] = []
        async with httpx.AsyncClient(base_url=f"{gateway.base_url}/v1", headers=headers, timeout=60) as http:
            async with http.stream("POST", "/chat-messages", json={"inputs": {}, "query": "hi", "user": "u",
                                                                   "response_mode": "streaming"}) as r:
                assert r.status_code == 200, await r.aread()
                lines = r.aiter_lines()
                await collect_sse(lines, before, until="message")  # the first token: mid-stream
                gateway.kill()  # SIGKILL, the stream open
                killed = time.monotonic()
                with pytest.raises(httpx.HTTPError):  # the client sees its stream break
                    await collect_sse(lines, before)
        model.release.set()  # the run goes on without the gateway
        restarted = run_service("gateway", env=gateway_env, http_port=port)
        task_id, last = before[0][1]["task_id"], before[-1][0]
        after: list[tuple[int, dict]] = []
        async with httpx.AsyncClient(base_url=f"{restarted.base_url}/v1", headers=headers, timeout=60) as http:
            async with http.stream("GET", f"/runs/{task_id}/events", headers={"Last-Event-ID": str(last)}) as r:
                assert r.status_code == 200, await r.aread()
                await collect_sse(r.aiter_lines(), after, until="message_end")
            print(f"recovery_s={time.monotonic() - killed:.2f} (gateway SIGKILL -> the resumed stream's "
                  f"message_end, the gateway's restart included)")
            # The gateway's own record of the turn: one message, with the whole answer.
            conversation = before[0][1]["conversation_id"]

            async def recorded():
                r = await http.get("/messages", params={"conversation_id": conversation, "user": "u"})
                data = r.json().get("data") if r.status_code == 200 else None
                return data if data and data[0].get("answer") else None

            messages = await eventually(recorded, "the restarted gateway to record the turn")
    seqs = [s for s, _ in before + after]
    assert seqs == list(range(1, len(seqs) + 1)), f"every event once, in order: {seqs}"
    names = [d["event"] for _, d in before + after]
    assert names.count("message_end") == 1 and names[-1] == "message_end"
    answer = "".join(d["answer"] for _, d in before + after if d["event"] == "message")
    assert answer == "call1 done" and model.calls == 1  # the run was not disturbed
    assert [m["answer"] for m in messages] == ["call1 done"]
    assert restarted.proc.poll() is None


async def test_gateway_killed_mid_run_the_run_is_recorded_once_after_its_restart(
        own_nats, database_url, run_service) -> None:
    """The gateway SIGKILLed while a streaming chat's model call is in flight, and no client comes
    back: the run ends while no gateway runs (its outcome waits on runs.finished), and the restarted
    gateway's durable consumer records it, once: the run succeeded with its tokens, one message with
    the whole answer, the outcome acked; a read route repairs nothing (there is none to)."""
    db = _with_database(database_url, f"faults_{uuid.uuid4().hex[:10]}")
    async with serve_held_model() as model:
        env = {"LOOM_NATS_URL": own_nats.url, "LOOM_DATABASE_URL": db, "LOOM_INFERENCE_ADDR": model.addr}
        run_service("orchestrator", env=env)
        port, admin = infra.free_port(), infra.free_port()
        gateway_env = {**env, "LOOM_GATEWAY_ADMIN_PORT": str(admin)}
        gateway = run_service("gateway", env=gateway_env, http_port=port)
        stack = Stack(gateway_url=gateway.base_url, inference_addr=model.addr)
        _sign_in(stack)
        _, key = app_with_key(stack, "chatflow", GATEWAY_CHAT)
        before: list[tuple[int, dict]] = []
        async with httpx.AsyncClient(base_url=f"{gateway.base_url}/v1", timeout=60,
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            async with http.stream("POST", "/chat-messages", json={"inputs": {}, "query": "hi", "user": "u",
                                                                   "response_mode": "streaming"}) as r:
                assert r.status_code == 200, await r.aread()
                await collect_sse(r.aiter_lines(), before, until="message")  # the first token: mid-run
                gateway.kill()  # SIGKILL: no stream, no watcher, nothing in memory survives
        run_id = before[0][1]["task_id"]
        model.release.set()  # the run ends with no gateway up
        await _finished_row(db, run_id)  # the orchestrator's record: its outcome was published first
        async with BusClient(own_nats.url) as client:
            js = client.broker.connection.jetstream()
            assert (await js.stream_info(bus.RUN_OUTCOMES.name)).state.messages >= 1  # waiting for a gateway
            run_service("gateway", env=gateway_env, http_port=port)

            async def recorded():
                conn = await asyncpg.connect(db)
                try:
                    row = await conn.fetchrow("SELECT status, total_tokens, finished_at FROM gateway.runs "
                                              "WHERE id = $1", run_id)
                    msgs = await conn.fetch("SELECT answer, status FROM gateway.messages WHERE run_id = $1", run_id)
                finally:
                    await conn.close()
                return (row, msgs) if row is not None and row["status"] != "running" else None

            row, msgs = await eventually(recorded, "the restarted gateway to record the run from runs.finished")

            async def acked():
                info = await js.consumer_info(bus.RUN_OUTCOMES.name, bus.GATEWAY_RUN_OUTCOMES.durable)
                return info.num_pending == 0 and info.num_ack_pending == 0

            await eventually(acked, "the outcome acked")

            async def consumed():  # a work queue: an acked message is gone, never delivered again
                return (await js.stream_info(bus.RUN_OUTCOMES.name)).state.messages == 0

            await eventually(consumed, "the outcome removed from the work queue")
    assert row["status"] == "succeeded" and row["total_tokens"] > 0
    assert [(m["answer"], m["status"]) for m in msgs] == [("call1 done", "normal")] and model.calls == 1
    assert (await recorded())[0]["finished_at"] == row["finished_at"]  # recorded once, never again
