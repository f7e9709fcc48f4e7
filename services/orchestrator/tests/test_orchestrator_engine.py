"""The engine over in-memory ports: branches (nested), joins, parallelism, iteration, loop,
retries, error strategies, timeouts, limits, resume from the journal, events and seq."""

from __future__ import annotations

import asyncio

from orchestrator_testkit import chain, edge, node, tpl

from loom_common.testing import eventually
from loom_orchestrator.engine.context import NodeResult, RunLimits
from loom_orchestrator.engine.node import Node
from loom_orchestrator.workflow import _REGISTRY

START = node(
    "start",
    "start",
    variables=[
        {"variable": "x", "type": "number", "required": False},
        {"variable": "items", "type": "json_object", "required": False},
    ],
)


def end(*outs: tuple[str, list[str]]) -> dict:
    return node("end", "end", outputs=[{"variable": k, "value_selector": v} for k, v in outs])


class Sleepy(Node):
    """A test node type: sleeps `seconds`, fails the first `fail` calls, counts calls and the
    most calls in flight at once (overlap is asserted on that, not on wall time, which a
    loaded machine stretches)."""

    type, version = "sleepy", "1"  # traits: none (not pure: its starts are journaled)

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.fail: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.running = self.peak = 0

    async def run(self, data, ctx) -> NodeResult:
        self.calls[ctx.node_id] = self.calls.get(ctx.node_id, 0) + 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.seconds.get(ctx.node_id, 0.0))
        finally:
            self.running -= 1
        if self.fail.get(ctx.node_id, 0) >= self.calls[ctx.node_id]:
            raise RuntimeError(f"boom {self.calls[ctx.node_id]}")
        return NodeResult(outputs={"text": f"{ctx.node_id} ok"})


def sleepy(nid: str, **extra) -> dict:
    # Borrow the tool node's schema (a real type) and swap the implementation in the registry.
    return node(nid, "tool", tool_name="sleepy", **extra)


async def test_nested_branches_pick_one_path_and_skip_the_rest(harness) -> None:
    g = {
        "nodes": [
            START,
            node(
                "if1",
                "if-else",
                cases=[
                    {
                        "case_id": "pos",
                        "conditions": [{"variable_selector": ["start", "x"], "comparison_operator": ">", "value": 0}],
                    }
                ],
            ),
            node(
                "if2",
                "if-else",
                cases=[
                    {
                        "case_id": "big",
                        "logical_operator": "or",
                        "conditions": [
                            {"variable_selector": ["start", "x"], "comparison_operator": "≥", "value": 100},
                            {"variable_selector": ["start", "x"], "comparison_operator": "=", "value": 42},
                        ],
                    }
                ],
            ),
            tpl("neg", "negative"),
            tpl("big", "big"),
            tpl("small", "small"),
            node("agg", "variable-aggregator", variables=[["neg", "output"], ["big", "output"], ["small", "output"]]),
            end(("r", ["agg", "output"])),
        ],
        "edges": [
            edge("start", "if1"),
            edge("if1", "if2", "pos"),
            edge("if1", "neg", "false"),
            edge("if2", "big", "big"),
            edge("if2", "small", "false"),
            edge("neg", "agg"),
            edge("big", "agg"),
            edge("small", "agg"),
            edge("agg", "end"),
        ],
    }
    for x, want in ((-1, "negative"), (42, "big"), (500, "big"), (7, "small")):
        out = await harness.run(g, {"x": x})
        assert (out.status, out.outputs) == ("succeeded", {"r": want}), out.error
    ran = [d["node_id"] for d in harness.sink.of("node_started")][-6:]
    assert "neg" not in ran and "big" not in ran  # skipped branches never start


async def test_independent_branches_run_concurrently_and_join(harness, monkeypatch) -> None:
    impl = Sleepy()
    impl.seconds = {"a": 0.3, "b": 0.3, "c": 0.3}
    monkeypatch.setitem(_REGISTRY, "tool", impl)
    g = {
        "nodes": [
            START,
            sleepy("a"),
            sleepy("b"),
            sleepy("c"),
            tpl("join", "{{a}}|{{b}}|{{c}}", a=["a", "text"], b=["b", "text"], c=["c", "text"]),
            end(("r", ["join", "output"])),
        ],
        "edges": [
            edge("start", "a"),
            edge("start", "b"),
            edge("start", "c"),
            edge("a", "join"),
            edge("b", "join"),
            edge("c", "join"),
            edge("join", "end"),
        ],
    }
    out = await harness.run(g)
    assert out.outputs == {"r": "a ok|b ok|c ok"}
    assert impl.peak == 3  # the three 0.3 s nodes overlapped


async def test_seq_is_strictly_increasing_and_events_follow_dify(harness) -> None:
    g = {"nodes": [START, tpl("t", "hi"), end(("r", ["t", "output"]))], "edges": chain("start", "t", "end")}
    await harness.run(g)
    seqs = [e[0] for e in harness.sink.events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert harness.sink.names()[0] == "workflow_started" and harness.sink.names()[-1] == "workflow_finished"
    fin = harness.sink.of("node_finished")[1]
    assert {
        "id",
        "node_id",
        "node_type",
        "title",
        "index",
        "inputs",
        "outputs",
        "status",
        "elapsed_time",
        "execution_metadata",
        "created_at",
        "finished_at",
    } <= fin.keys()


async def test_iteration_sequential_and_parallel_with_limit(harness, monkeypatch) -> None:
    impl = Sleepy()
    monkeypatch.setitem(_REGISTRY, "tool", impl)
    for parallel in (False, True):
        g = {
            "nodes": [
                START,
                node(
                    "it",
                    "iteration",
                    iterator_selector=["start", "items", "list"],
                    output_selector=["t", "output"],
                    is_parallel=parallel,
                    parallel_nums=2,
                ),
                node("it-start", "iteration-start", parent="it"),
                sleepy("slow", parent="it"),
                node(
                    "t",
                    "template-transform",
                    parent="it",
                    template="{{i}}:{{v}}",
                    variables=[
                        {"variable": "i", "value_selector": ["it", "index"]},
                        {"variable": "v", "value_selector": ["it", "item"]},
                    ],
                ),
                end(("r", ["it", "output"])),
            ],
            "edges": [*chain("start", "it", "end"), *chain("it-start", "slow", "t")],
        }
        impl.seconds, impl.peak = {"slow": 0.2}, 0
        out = await harness.run(g, {"items": {"list": ["a", "b", "c", "d"]}})
        assert out.outputs == {"r": ["0:a", "1:b", "2:c", "3:d"]}, out.error
        assert impl.peak == (2 if parallel else 1)  # 2 at a time (the limit) vs one after another
    assert "iteration_completed" in harness.sink.names()


async def test_loop_breaks_on_condition_and_stops_at_max_count(harness) -> None:
    def g(count: int, limit: int) -> dict:
        return {
            "nodes": [
                START,
                node(
                    "lp",
                    "loop",
                    loop_count=count,
                    loop_variables=[{"label": "n", "var_type": "number", "value": 0}],
                    break_conditions=[{"variable_selector": ["lp", "n"], "comparison_operator": "≥", "value": limit}],
                ),
                node("lp-start", "loop-start", parent="lp"),
                node(
                    "inc",
                    "assigner",
                    parent="lp",
                    items=[{"variable_selector": ["lp", "n"], "operation": "+=", "value": 1}],
                ),
                end(("n", ["lp", "n"]), ("rounds", ["lp", "loop_round"])),
            ],
            "edges": [*chain("start", "lp", "end"), *chain("lp-start", "inc")],
        }

    out = await harness.run(g(10, 3))
    assert out.outputs == {"n": 3, "rounds": 3}, out.error
    out = await harness.run(g(4, 100))
    assert out.outputs == {"n": 4, "rounds": 4}


async def test_loop_end_node_stops_the_loop(harness) -> None:
    g = {
        "nodes": [
            START,
            node("lp", "loop", loop_count=50, loop_variables=[{"label": "n", "value": 0}]),
            node("ls", "loop-start", parent="lp"),
            node(
                "inc",
                "assigner",
                parent="lp",
                items=[{"variable_selector": ["lp", "n"], "operation": "+=", "value": 1}],
            ),
            node(
                "chk",
                "if-else",
                parent="lp",
                cases=[
                    {
                        "case_id": "done",
                        "conditions": [{"variable_selector": ["lp", "n"], "comparison_operator": "=", "value": 2}],
                    }
                ],
            ),
            node("stop", "loop-end", parent="lp"),
            end(("n", ["lp", "n"])),
        ],
        "edges": [*chain("start", "lp", "end"), *chain("ls", "inc", "chk"), edge("chk", "stop", "done")],
    }
    out = await harness.run(g)
    assert out.outputs == {"n": 2}, out.error


async def test_retry_with_backoff_then_success(harness, monkeypatch) -> None:
    impl = Sleepy()
    impl.fail = {"s": 2}
    monkeypatch.setitem(_REGISTRY, "tool", impl)
    g = {
        "nodes": [
            START,
            sleepy("s", retry_config={"retry_enabled": True, "max_retries": 2, "retry_interval": 10}),
            end(("r", ["s", "text"])),
        ],
        "edges": chain("start", "s", "end"),
    }
    out = await harness.run(g)
    assert out.status == "succeeded" and impl.calls["s"] == 3
    assert len(harness.sink.of("node_retry")) == 2


async def test_fail_branch_default_value_and_plain_failure(harness, monkeypatch) -> None:
    impl = Sleepy()
    impl.fail = {"s": 99}
    monkeypatch.setitem(_REGISTRY, "tool", impl)
    g = {
        "nodes": [
            START,
            sleepy("s", error_strategy="fail-branch"),
            tpl("ok", "fine"),
            tpl("bad", "handled: {{e}}", e=["s", "error_message"]),
            node("agg", "variable-aggregator", variables=[["ok", "output"], ["bad", "output"]]),
            end(("r", ["agg", "output"])),
        ],
        "edges": [
            edge("start", "s"),
            edge("s", "ok"),
            edge("s", "bad", "fail-branch"),
            edge("ok", "agg"),
            edge("bad", "agg"),
            edge("agg", "end"),
        ],
    }
    out = await harness.run(g)
    assert out.status == "partial-succeeded" and out.outputs["r"].startswith("handled: boom")
    g2 = {
        "nodes": [
            START,
            sleepy(
                "s",
                error_strategy="default-value",
                default_value=[{"key": "text", "type": "string", "value": "fallback"}],
            ),
            end(("r", ["s", "text"])),
        ],
        "edges": chain("start", "s", "end"),
    }
    out = await harness.run(g2)
    assert out.outputs == {"r": "fallback"}
    g3 = {"nodes": [START, sleepy("s"), end(("r", ["s", "text"]))], "edges": chain("start", "s", "end")}
    out = await harness.run(g3)
    assert out.status == "failed" and "node 's' (tool) failed: boom" in out.error
    assert harness.sink.names()[-2:] == ["error", "workflow_finished"]


async def test_node_timeout_and_run_limits(harness, monkeypatch) -> None:
    impl = Sleepy()
    impl.seconds = {"s": 5}
    monkeypatch.setitem(_REGISTRY, "tool", impl)
    g = {"nodes": [START, sleepy("s", timeout_s=0.1), end()], "edges": chain("start", "s", "end")}
    out = await harness.run(g)
    assert out.status == "failed" and "timed out" in out.error
    g = {"nodes": [START, sleepy("s"), end()], "edges": chain("start", "s", "end")}
    out = await harness.run(g, limits=RunLimits(max_wall_s=0.2))
    assert out.status == "failed" and "wall time" in out.error
    ids = [f"t{i}" for i in range(10)]
    g = {"nodes": [START, *[tpl(i, "x") for i in ids], end()], "edges": chain("start", *ids, "end")}
    out = await harness.run(g, limits=RunLimits(max_steps=5))
    assert out.status == "failed" and "5 steps" in out.error


async def test_resume_skips_finished_nodes_and_restarts_an_in_flight_one_once(harness, monkeypatch) -> None:
    impl = Sleepy()
    monkeypatch.setitem(_REGISTRY, "tool", impl)
    g = {
        "nodes": [START, sleepy("a"), sleepy("b"), sleepy("c"), end(("r", ["c", "text"]))],
        "edges": chain("start", "a", "b", "c", "end"),
    }
    impl.seconds = {"b": 10}
    task = asyncio.create_task(harness.run(g, run_id="r-crash"))
    while "b" not in impl.calls:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    task.cancel()  # the worker "dies" with b in flight
    await asyncio.gather(task, return_exceptions=True)
    impl.seconds = {}
    out = await harness.run(g, run_id="r-crash")
    assert out.status == "succeeded"
    assert impl.calls == {"a": 1, "b": 2, "c": 1}  # a not re-run, b restarted once
    # b in flight again when the second worker "dies": a third start is refused
    impl.calls.clear()
    impl.seconds = {"b": 10}
    task = asyncio.create_task(harness.run(g, run_id="r-crash2"))
    await eventually(lambda: impl.calls.get("b", 0) == 1, "the first worker started b")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    task = asyncio.create_task(harness.run(g, run_id="r-crash2"))
    await eventually(lambda: impl.calls.get("b", 0) == 2, "the second worker restarted b")  # not a sleep
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    out = await harness.run(g, run_id="r-crash2")
    assert out.status == "failed" and "in flight when its worker died" in out.error


async def test_conversation_variables_are_assigned_and_returned(harness) -> None:
    g = {
        "nodes": [
            START,
            node(
                "as",
                "assigner",
                items=[
                    {"variable_selector": ["conversation", "count"], "operation": "+=", "value": 1},
                    {
                        "variable_selector": ["conversation", "seen"],
                        "operation": "append",
                        "input_type": "variable",
                        "value": ["sys", "query"],
                    },
                ],
            ),
            node("ans", "answer", answer="n={{#conversation.count#}}"),
        ],
        "edges": chain("start", "as", "ans"),
        "conversation_variables": [
            {"name": "count", "value_type": "number", "value": 0},
            {"name": "seen", "value_type": "array[string]", "value": []},
        ],
    }
    out = await harness.run(g, mode="chatflow", query="hello", conversation={"count": 4, "seen": ["x"]})
    assert out.conversation_variables == {"count": 5, "seen": ["x", "hello"]}
    assert out.answer == "n=5"
    assert harness.sink.names()[-2:] == ["workflow_finished", "message_end"]
    assert [d["answer"] for d in harness.sink.of("message")] == ["n=5"]
    # message_end tells the gateway the conversation's variables after the turn (its variables API).
    assert harness.sink.of("message_end")[-1]["conversation_variables"] == {"count": 5, "seen": ["x", "hello"]}


async def test_start_checks_inputs_and_template_is_sandboxed(harness) -> None:
    g = {
        "nodes": [
            node("start", "start", variables=[{"variable": "q", "type": "text-input", "max_length": 3}]),
            end(("q", ["start", "q"])),
        ],
        "edges": chain("start", "end"),
    }
    out = await harness.run(g, {})
    assert out.status == "failed" and "input 'q' is required" in out.error
    out = await harness.run(g, {"q": "toolong"})
    assert "longer than 3" in out.error
    g = {
        "nodes": [START, tpl("t", "{{ ''.__class__.__mro__[1].__subclasses__() }}"), end(("r", ["t", "output"]))],
        "edges": chain("start", "t", "end"),
    }
    out = await harness.run(g)
    assert out.status == "failed" and "unsafe" in out.error.lower()


async def test_node_started_carries_the_inputs_it_reads_with_secrets_masked(harness) -> None:
    """Dify's node_started lists `inputs`: the variables a node reads, as they stand when it
    starts; a secret environment variable shows as a mask in events' inputs (issue 18)."""
    g = {
        "nodes": [START,
                  tpl("t", "{{ x }} {{ token }} {{ region }}", x=["start", "x"], token=["env", "token"],
                      region=["env", "region"]),
                  end(("out", ["t", "output"]))],
        "edges": chain("start", "t", "end"),
        "environment_variables": [{"name": "token", "value_type": "secret", "value": "sk-123"},
                                  {"name": "region", "value_type": "string", "value": "eu"}],
    }
    out = await harness.run(g, {"x": 7})
    assert out.outputs == {"out": "7 sk-123 eu"}   # the node itself reads the real value
    started = {d["node_id"]: d for d in harness.sink.of("node_started")}
    assert started["start"]["inputs"] == {}
    assert started["t"]["inputs"] == {"start.x": 7, "env.token": "******", "env.region": "eu"}
    assert started["end"]["inputs"] == {"t.output": "7 sk-123 eu"}
    finished = {d["node_id"]: d for d in harness.sink.of("node_finished")}
    assert "sk-123" not in repr(finished["t"]["inputs"]) and "******" in repr(finished["t"]["inputs"])
    assert finished["t"]["outputs"] == {"output": "7 sk-123 eu"}   # outputs are the node's own
