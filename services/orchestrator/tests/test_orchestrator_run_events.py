"""The orchestrator's side of the run-event contract: every event it builds fits its typed
payload (a node's true tries in node_finished), and the run's outcome on runs.finished."""

from __future__ import annotations

from orchestrator_testkit import chain
from test_orchestrator_engine import START, Sleepy, end, sleepy

from loom_common.events.runs import NodeFinished, run_event_data
from loom_orchestrator.workflow import _REGISTRY


async def test_node_finished_reports_the_tries_a_node_took_and_every_event_fits_the_contract(harness,
                                                                                           monkeypatch) -> None:
    impl = Sleepy()
    impl.fail = {"s": 2}
    monkeypatch.setitem(_REGISTRY, "tool", impl)
    g = {
        "nodes": [
            START,
            sleepy("s", retry_config={"retry_enabled": True, "max_retries": 2, "retry_interval": 10}),
            sleepy("t"),
            end(("r", ["t", "text"])),
        ],
        "edges": chain("start", "s", "t", "end"),
    }
    out = await harness.run(g)
    assert out.status == "succeeded"
    typed = [run_event_data(name, data) for _, name, _, data in harness.sink.events]  # raises if one does not fit
    finished = {e.node_id: e.execution_metadata.attempts for e in typed if isinstance(e, NodeFinished)}
    assert finished["s"] == 3 and finished["t"] == 1  # two retries, then success; no retry
