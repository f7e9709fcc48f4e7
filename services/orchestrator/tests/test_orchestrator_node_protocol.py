"""The node protocol: node types declare `type`, `version` and traits in a typed registry,
tell the engine what they do to the run through `NodeResult` (replayed from the journal on
resume), and a run resumed across a change of a node's version fails with a clear error: in
memory, on the real journal in Postgres, and with real workers (one SIGKILLed mid-run, the
one that takes over "deployed" with another version of the node in flight)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from orchestrator_inmemory import ListSink
from orchestrator_testkit import CHAT_GRAPH, BusClient, chain, node, serve_held_model

from loom_common.dsl.flow_nodes import EndData, ToolData
from loom_common.dsl.graph import NODE_TYPES, parse_graph
from loom_common.events import RunRequested
from loom_common.ids import new_id
from loom_common.testing import eventually
from loom_orchestrator.engine.context import NodeResult, RunContext, Services
from loom_orchestrator.engine.node import Node, NodeRegistry, Traits
from loom_orchestrator.engine.runner import NodeVersionChanged
from loom_orchestrator.engine.topology import compile_graph
from loom_orchestrator.nodes import registry
from loom_orchestrator.nodes.end import EndNode
from loom_orchestrator.store import PgJournal, PgRunStore
from loom_orchestrator.workflow import _REGISTRY, execute_run

ENGINE = Path(__file__).parents[1] / "src/loom_orchestrator/engine"


class Held(Node[ToolData]):
    """Runs in place of the tool node: waits while `hold` names it, counts calls."""

    type, version = "tool", "1"

    def __init__(self, version: str = "1") -> None:
        self.version = version  # type: ignore[misc]  # an instance of another version, as after a deploy
        self.calls: dict[str, int] = {}
        self.hold: set[str] = set()

    async def run(self, data: ToolData, ctx) -> NodeResult:
        self.calls[ctx.node_id] = self.calls.get(ctx.node_id, 0) + 1
        while ctx.node_id in self.hold:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return NodeResult(outputs={"text": f"{ctx.node_id} ok"})


def tool(nid: str) -> dict:
    return node(nid, "tool", tool_name="held")


# start -> a -> answer -> b -> end: a chatflow whose answer is said before b (held) runs.
GRAPH = {"nodes": [node("start", "start"), tool("a"), node("ans", "answer", answer="said {{#a.text#}}"), tool("b"),
                   node("end", "end", outputs=[{"variable": "r", "value_selector": ["b", "text"]}])],
         "edges": chain("start", "a", "ans", "b", "end")}


def test_every_dsl_type_has_a_node_declaring_version_and_traits() -> None:
    reg = registry()
    assert isinstance(reg, NodeRegistry) and sorted(reg) == sorted(NODE_TYPES)
    for type_, impl in reg.items():
        assert isinstance(impl, Node) and impl.type == type_ and impl.version and isinstance(impl.traits, Traits)
        config = impl.config_type()
        assert config is not None and config.model_fields["type"].default == type_  # generic over its own config
    assert {t for t, n in reg.items() if n.traits.calls_model} == {
        "llm", "agent", "question-classifier", "parameter-extractor"}
    assert {t for t, n in reg.items() if n.traits.container} == {"iteration", "loop"}
    assert {t for t, n in reg.items() if n.traits.entry} == {"start", "iteration-start", "loop-start"}
    assert {t for t, n in reg.items() if n.traits.streams} == {"llm", "agent"}
    assert not any(reg[t].traits.pure for t in ("llm", "code", "tool", "http-request", "knowledge-retrieval"))
    # The engine tells kinds apart by traits and results only: it compares no type name, keeps no list of them.
    for module in ("runner.py", "topology.py"):
        source = (ENGINE / module).read_text()
        assert not re.findall(r'(?:==|!=|= \(|in \()\s*"(?:' + "|".join(map(re.escape, NODE_TYPES)) + ')"', source)
        assert not re.search(r"_NODES\b|STREAMERS|endswith\(", source), module


def test_the_registry_and_node_classes_refuse_bad_declarations() -> None:
    with pytest.raises(ValueError, match="two nodes declare type 'end'"):
        NodeRegistry.of([EndNode(), EndNode()])

    class Mismatched(Node[EndData]):
        type, version = "answer", "1"

        async def run(self, data, ctx) -> NodeResult:
            return NodeResult()

    with pytest.raises(ValueError, match="EndData, the config of 'end'"):
        NodeRegistry.of([Mismatched()])
    with pytest.raises(TypeError, match="is not a Node"):
        NodeRegistry()["tool"] = object()  # type: ignore[assignment]
    with pytest.raises(TypeError, match="non-empty str `version`"):
        class Unversioned(Node[ToolData]):
            type = "tool"

            async def run(self, data, ctx) -> NodeResult:
                return NodeResult()


def test_scopes_entries_and_the_streaming_plan_come_from_traits_and_shows_first() -> None:
    llm = {"model": {"name": "m"}, "prompt_template": [{"role": "user", "text": "hi"}]}
    graph = parse_graph({"nodes": [
        node("start", "start"), node("l1", "llm", **llm), node("ans", "answer", answer="{{#l1.text#}} and more"),
        node("l2", "llm", **llm), node("end", "end", outputs=[{"variable": "t", "value_selector": ["l2", "text"]}]),
        node("l3", "llm", **llm), node("tpl", "template-transform", template="x"),
        node("late", "answer", answer="{{#l3.text#}}"),
        node("lp", "loop", loop_count=1), node("ls", "loop-start", parent="lp"),
        node("inner", "template-transform", template="y", parent="lp")],
        "edges": [*chain("start", "l1", "ans", "l2", "end"), *chain("start", "l3", "tpl", "late"),
                  *chain("start", "lp"), *chain("ls", "inner")]})
    scopes = compile_graph(graph, registry())
    assert set(scopes) == {None, "lp"} and scopes[None].entry == "start" and scopes["lp"].entry == "ls"
    # l1 and l2 feed what shows their text first, alone; l3's text reaches its answer through another node.
    assert scopes[None].stream_to == {"l1": "ans", "l2": "end"}


def _request(run_id: str, tenant: str = "t1") -> tuple[RunRequested, RunContext]:
    req = RunRequested(tenant_id=tenant, run_id=run_id, app_id="app", app_mode="chatflow", graph=GRAPH,
                       query="q", conversation_id=None)
    return req, RunContext(run_id=run_id, tenant_id=tenant, app_id="app", mode="chatflow", message_id=run_id)


async def _crash_then_resume(journal_for, run_id: str, monkeypatch, *, new_version: str, tenant: str = "t1"):
    """Run GRAPH until b is in flight, kill the run (its worker "dies"), then resume it on a
    "deployed" worker whose tool node has `new_version`. Returns (old node, new node, outcome, events)."""
    old = Held()
    old.hold = {"b"}
    monkeypatch.setitem(_REGISTRY, "tool", old)
    req, run = _request(run_id, tenant)
    task = asyncio.create_task(execute_run(req, run, Services(), journal_for(), ListSink()))
    await eventually(lambda: old.calls.get("b") == 1, "b started")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    new = Held(new_version)
    monkeypatch.setitem(_REGISTRY, "tool", new)
    sink = ListSink()
    outcome = await execute_run(req, run, Services(), journal_for(), sink)
    return old, new, outcome, sink


async def test_a_run_resumed_across_a_node_version_change_fails_clearly(harness, monkeypatch) -> None:
    _, new, outcome, sink = await _crash_then_resume(lambda: harness.journal, "r-deploy", monkeypatch,
                                                       new_version="2")
    assert outcome.status == "failed"
    assert outcome.error == str(NodeVersionChanged("a", "tool", "1", "2"))
    assert "node 'a' (tool) was journaled by version 1 and this worker has version 2" in outcome.error
    assert new.calls == {}  # nothing ran again on the new code, not even the node in flight
    assert [e["message"] for e in sink.of("error")] == [outcome.error]
    assert [e["code"] for e in sink.of("error")] == ["node_version_changed"]  # not the workflow's failure
    assert sink.of("workflow_finished")[0]["status"] == "failed" and not sink.of("node_started")


async def test_an_unchanged_version_resumes_and_replays_what_nodes_did(harness, monkeypatch) -> None:
    _, new, outcome, _ = await _crash_then_resume(lambda: harness.journal, "r-same", monkeypatch,
                                                       new_version="1")
    assert outcome.status == "succeeded", outcome.error
    assert new.calls == {"b": 1}  # a replayed from the journal, b (in flight) started again
    assert outcome.answer == "said a ok"  # the answer node's text, replayed from its record
    assert outcome.outputs == {"r": "b ok"}  # the end node's outputs are the run's
    assert {r.key: r.version for r in harness.journal.runs["r-same"].values()}["b"] == "1"


@pytest.mark.integration
async def test_the_postgres_journal_keeps_versions_and_refuses_a_changed_one(pool, monkeypatch) -> None:
    store = PgRunStore(pool)
    for run_id, version in ((new_id(), "2"), (new_id(), "1")):
        req, _ = _request(run_id, "t-pg")
        await store.claim(req, None, "w1")
        _, _, outcome, _ = await _crash_then_resume(lambda: PgJournal(pool, "t-pg"), run_id, monkeypatch,
                                                    new_version=version, tenant="t-pg")
        rows = {r["key"]: r for r in await pool.fetch(
            "SELECT key, node_version, effects FROM node_executions WHERE run_id = $1", run_id)}
        if version == "2":
            assert outcome.status == "failed" and "was journaled by version 1 and this worker has version 2" in (
                outcome.error or "")
            assert rows["b"]["node_version"] == "1"  # the in-flight note kept the version that started it
        else:
            assert outcome.status == "succeeded" and outcome.answer == "said a ok", outcome.error
            assert {k: r["node_version"] for k, r in rows.items()} == {
                "start": "1", "a": "1", "ans": "1", "b": "1", "end": "1"}
            assert rows["ans"]["effects"] == '{"answer": "said a ok"}'


@pytest.mark.integration
async def test_the_migration_backfills_rows_of_unfinished_runs(pool) -> None:
    """Rows journaled before versions were kept: an unfinished run's get the versions and
    effects the old engine had (so it resumes after the deploy), a finished run's stay as they were."""
    sql = (Path(__file__).parents[1] / "src/loom_orchestrator/migrations/0020_node_versions.sql").read_text()
    backfill = sql[sql.index("UPDATE"):]
    store = PgRunStore(pool)
    running, done = (RunRequested(tenant_id="t-old", run_id=new_id(), app_id="app") for _ in range(2))
    for req in (running, done):
        await store.claim(req, None, "w")
    await pool.execute("UPDATE runs SET status = 'succeeded' WHERE id = $1", done.run_id)
    legacy: list[tuple[str, str, Any]] = [
        ("ans", "answer", '{"answer": "hi"}'), ("kr", "knowledge-retrieval", '{"result": [{"content": "c"}, 3]}'),
        ("end", "end", '{"r": 1}'), ("le", "loop-end", "{}"), ("as", "assigner", "{}"), ("t", "tool", "{}")]
    for req in (running, done):
        for i, (key, type_, outputs) in enumerate(legacy):
            await pool.execute("INSERT INTO node_executions (run_id, key, tenant_id, node_id, node_type, idx, status, "
                               "outputs) VALUES ($1, $2, 't-old', $2, $3, $4, 'succeeded', $5::jsonb)",
                               req.run_id, key, type_, i, outputs)
    await pool.execute(backfill)
    records = await PgJournal(pool, "t-old").load(running.run_id)
    assert {k: r.version for k, r in records.items()} == {k: "2" if k == "as" else "1" for k, _, _ in legacy}
    assert records["ans"].answer == "hi" and records["kr"].citations == [{"content": "c"}]
    assert records["end"].run_outputs == {"r": 1} and records["le"].loop_end and records["t"].answer is None
    untouched = await PgJournal(pool, "t-old").load(done.run_id)
    assert {r.version for r in untouched.values()} == {None}


@pytest.mark.integration
@pytest.mark.slow
async def test_a_worker_deployed_with_another_node_version_fails_the_run_it_takes_over(
        nats, database_url, run_service, tmp_path) -> None:
    # The "deploy": worker B's llm node is version 2 (set at start-up by a sitecustomize on its path).
    shim = tmp_path / "deployed"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("from loom_orchestrator.nodes.llm import LLMNode\nLLMNode.version = '2'\n")
    async with serve_held_model() as model, BusClient(nats) as client:
        env = {"LOOM_NATS_URL": nats, "LOOM_INFERENCE_ADDR": model.addr}
        a = run_service("orchestrator", env=env)
        run_id = await client.request(CHAT_GRAPH, app_mode="chatflow", query="hi", conversation_id=new_id())
        conn = await asyncpg.connect(database_url)
        try:
            await eventually(lambda: conn.fetchval("SELECT node_version FROM orchestrator.node_executions "
                                                   "WHERE run_id = $1 AND key = 'llm'", run_id),
                             "worker A to note the llm node in flight")
            run_service("orchestrator", env={**env, "PYTHONPATH": os.pathsep.join(
                filter(None, [str(shim), os.environ.get("PYTHONPATH")]))})
            a.kill()  # SIGKILL with the llm call in flight: B takes the run over once its ack wait passes
            events = await client.events(run_id, until="workflow_finished", timeout_s=90)
            row = await eventually(lambda: conn.fetchrow("SELECT status, error FROM orchestrator.runs WHERE id = $1 "
                                                         "AND status <> 'running'", run_id), "the run's outcome")
        finally:
            await conn.close()
    expected = "node 'llm' (llm) was journaled by version 1 and this worker has version 2"
    assert row["status"] == "failed" and expected in row["error"]
    errors = [e for e in events if e.event == "error"]
    assert len(errors) == 1 and expected in _field(errors[0], "message")
    assert _field(errors[0], "code") == "node_version_changed"
    assert _field(events[-1], "status") == "failed" and expected in _field(events[-1], "error")
    assert model.calls == 1  # worker B called nothing: the run failed before anything ran again


def _field(event, name: str) -> Any:
    """A field of a run event's data, whether the data is the typed model or its dict."""
    return event.data[name] if isinstance(event.data, dict) else getattr(event.data, name)
