"""Model-backed nodes on the real stack: orchestrator, inference (the bundled gemma3:270m),
and tools processes over real NATS and Postgres. The base model's text is nonsense, so these
tests assert structure: prompts sent, events, schemas, tool calls, cancellation."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from orchestrator_testkit import BusClient, chain, edge, node

from loom_common import bus
from loom_common.devstack import infra
from loom_common.ids import new_id
from loom_common.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = {"name": "gemma3:270m", "completion_params": {"temperature": 0, "max_tokens": 4}}


async def _stack(run_service, *, tools: bool = False) -> tuple[dict, object]:
    inf_port = infra.free_port()
    inference = run_service(
        "inference",
        env={"LOOM_INFERENCE_GRPC_PORT": str(inf_port), "LOOM_INFERENCE_PERFORMANCE__MAX_PARALLEL": "2"},
        timeout_s=120,
    )
    env = {"LOOM_INFERENCE_ADDR": f"127.0.0.1:{inf_port}"}
    if tools:
        tools_port = infra.free_port()
        run_service("tools", env={"LOOM_TOOLS_GRPC_PORT": str(tools_port), "LOOM_TOOLS_SANDBOX_ALLOW_DEGRADED": "true"})
        env["LOOM_TOOLS_ADDR"] = f"127.0.0.1:{tools_port}"
    run_service("orchestrator", env=env)
    return env, inference


async def _prompt(database_url: str, run_id: str, key: str) -> list[dict]:
    conn = await asyncpg.connect(database_url)
    try:
        raw = await conn.fetchval(
            "SELECT process_data FROM orchestrator.node_executions WHERE run_id = $1 AND key = $2", run_id, key
        )
    finally:
        await conn.close()
    return json.loads(raw)["prompts"]


def _chatflow(memory: dict) -> dict:
    return {
        "nodes": [
            node("start", "start"),
            node(
                "llm",
                "llm",
                model=MODEL,
                memory=memory,
                prompt_template=[{"role": "system", "text": "You are a helpful assistant."}],
            ),
            node("ans", "answer", answer="{{#llm.text#}}"),
        ],
        "edges": chain("start", "llm", "ans"),
    }


async def test_chatflow_memory_keeps_turn_one_at_turn_eight_and_stop_cancels_generation(
    nats_url, database_url, run_service
) -> None:
    _, inference = await _stack(run_service)
    conv, small = new_id(), new_id()
    roomy = _chatflow({"window": {"enabled": True, "size": 10}, "max_tokens": 2000})
    tight = _chatflow({"window": {"enabled": True, "size": 10}, "max_tokens": 40})
    async with BusClient(nats_url) as client:
        for turn in range(1, 9):
            query = "My name is Ada Lovelace." if turn == 1 else f"Question number {turn}?"
            for graph, cid in ((roomy, conv), (tight, small)):
                run_id = await client.request(graph, app_mode="chatflow", query=query, conversation_id=cid)
                events = await client.events(run_id, until="message_end", timeout_s=120)
                assert events[-2].data.status == "succeeded", events[-2].data
                assert any(e.event == "message" for e in events)  # tokens streamed into the answer
        conn = await asyncpg.connect(database_url)
        try:
            ids = {
                r["conversation_id"]: r["id"]
                for r in await conn.fetch(
                    "SELECT DISTINCT ON (conversation_id) id, conversation_id FROM orchestrator.runs "
                    "WHERE conversation_id = ANY($1::text[]) ORDER BY conversation_id, created_at DESC",
                    [conv, small],
                )
            }
            turns = await conn.fetchval("SELECT count(*) FROM orchestrator.messages WHERE conversation_id = $1", conv)
        finally:
            await conn.close()
        assert turns == 8
        roomy_prompt = await _prompt(database_url, ids[conv], "llm")
        tight_prompt = await _prompt(database_url, ids[small], "llm")
        assert roomy_prompt[0] == {"role": "system", "text": "You are a helpful assistant."}
        assert roomy_prompt[1] == {"role": "user", "text": "My name is Ada Lovelace."}  # turn 1, at turn 8
        assert roomy_prompt[-1] == {"role": "user", "text": "Question number 8?"}
        assert len(roomy_prompt) == 1 + 2 * 7 + 1
        assert not any("Ada" in m["text"] for m in tight_prompt)  # over the budget: dropped, oldest first
        assert 1 < len(tight_prompt) < len(roomy_prompt)

        # Stop: a long generation is cancelled upstream (the inference slot is freed).
        long = _chatflow({"window": {"enabled": False, "size": 1}, "max_tokens": 0})
        long["nodes"][1]["data"]["model"] = {"name": "gemma3:270m", "completion_params": {"max_tokens": 2000}}
        run_id = await client.request(long, app_mode="chatflow", query="Tell a long story.", conversation_id=new_id())
        sub = await client.broker.connection.jetstream().subscribe(bus.run_events(run_id), ordered_consumer=True)
        while True:
            msg = await sub.next_msg(timeout=60)
            if b'"data":{"type":"message"' in msg.data:
                break
        await sub.unsubscribe()
        await client.cancel(run_id)
        events = await client.events(run_id, timeout_s=30)
        assert events[-1].data.status == "stopped", [(e.event, e.data) for e in events[-3:]]
        await eventually(lambda: _running(inference.base_url) == 0, "generation stopped after the run's stop")


async def test_a_chat_keeps_its_turn_before_it_announces_its_end(nats_url, database_url, run_service) -> None:
    """A client that asks its next question as soon as it reads message_end finds the turn in the
    conversation's memory. Made deterministic with a lock that holds the turn's write back: while
    the orchestrator waits on it, message_end is not on the bus."""
    await _stack(run_service)
    conv = new_id()
    graph = _chatflow({"window": {"enabled": True, "size": 10}, "max_tokens": 2000})
    conn, watcher = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        async with BusClient(nats_url) as client:
            held = conn.transaction()
            await held.start()
            try:
                await conn.execute("LOCK TABLE orchestrator.messages IN SHARE MODE")  # reads pass, writes wait
                first = await client.request(graph, app_mode="chatflow", query="My name is Ada.", conversation_id=conv)

                async def turn_write_waits() -> bool:  # (not on `conn`: in a transaction, the view is a snapshot)
                    return bool(await watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%INSERT INTO messages%'"))

                await eventually(turn_write_waits, "the turn's write waits on the lock", timeout_s=120)
                assert "message_end" not in [e.event for e in await client.all_events(first)]
            finally:
                await held.rollback()
            await client.events(first, until="message_end", timeout_s=120)
            second = await client.request(graph, app_mode="chatflow", query="What is my name?", conversation_id=conv)
            await client.events(second, until="message_end", timeout_s=120)
        prompt = await _prompt(database_url, second, "llm")
        assert prompt[1] == {"role": "user", "text": "My name is Ada."}, prompt
        assert prompt[-1] == {"role": "user", "text": "What is my name?"}
    finally:
        await conn.close()
        await watcher.close()


def _running(base_url: str) -> float:
    total = 0.0
    for line in httpx.get(base_url + "/metrics").text.splitlines():
        if line.startswith("loom_inference_num_requests_running{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_agent_classifier_extractor_with_the_real_model_and_tools(nats_url, database_url, run_service) -> None:
    await _stack(run_service, tools=True)
    g = {
        "nodes": [
            node("start", "start"),
            node(
                "qc",
                "question-classifier",
                model=MODEL,
                query_variable_selector=["sys", "query"],
                classes=[{"id": "math", "name": "arithmetic"}, {"id": "other", "name": "anything else"}],
            ),
            node(
                "pe",
                "parameter-extractor",
                model={"name": "gemma3:270m", "completion_params": {"max_tokens": 48}},
                query=["sys", "query"],
                parameters=[{"name": "expression", "type": "string", "required": True}],
            ),
            node(
                "ag",
                "agent",
                model={"name": "gemma3:270m", "completion_params": {"max_tokens": 48}},
                instruction="Use the calculator.",
                tools=[{"tool_name": "math.eval"}],
                tool_choice="required",
                max_iterations=2,
            ),
            node("ans", "answer", answer="{{#ag.text#}}"),
        ],
        "edges": [
            edge("start", "qc"),
            edge("qc", "pe", "math"),
            edge("qc", "pe", "other"),
            edge("pe", "ag"),
            edge("ag", "ans"),
        ],
    }
    async with BusClient(nats_url) as client:
        run_id = await client.request(g, app_mode="agent", query="What is 2 + 3?", conversation_id=new_id())
        events = await client.events(run_id, until="message_end", timeout_s=240)
    finished = {e.node_id: e.data for e in events if e.event == "node_finished"}
    assert events[-2].data.status == "succeeded", events[-2].data
    assert finished["qc"].outputs["class_id"] in ("math", "other")  # decoded under an enum schema
    assert set(finished["pe"].outputs) >= {"expression", "__is_success"}
    thoughts = [e.data for e in events if e.event == "agent_thought"]
    assert thoughts and thoughts[0].tool == "math.eval"  # the first round must call the tool
    assert "expression" in json.loads(json.loads(thoughts[0].tool_input)["math.eval"])  # schema-valid arguments
    assert thoughts[0].observation  # the real tools service answered (a result or its typed error)
    assert finished["ag"].outputs["iterations"] <= 2
