"""Run events as each app mode's Dify stream shows them (`api.sse.sse_payload`)."""

from __future__ import annotations

from loom_common.events import RunEvent
from loom_gateway.api.sse import sse_payload
from loom_gateway.domain.execution import StartedRun


def _events(mode: str, script: list[tuple[str, dict]]) -> list[dict]:
    run = StartedRun("r1", "t1", "a1", mode, 0, message_id="m1" if mode != "workflow" else None,
                     conversation_id="c1" if mode in ("chat", "chatflow", "agent") else None)
    out = []
    for seq, (event, data) in enumerate(script, start=1):
        payload = sse_payload(run, RunEvent(tenant_id="t1", run_id="r1", seq=seq, event=event, data=data))
        if payload is not None:
            out.append(payload)
    return out


STOPPED_CHAT = [("workflow_started", {}), ("node_started", {"node_id": "llm"}), ("message", {"answer": "Hi"}),
                ("workflow_finished", {"status": "stopped"}), ("message_end", {"metadata": {}})]


def test_chat_and_agent_apps_show_message_level_events_only() -> None:
    assert [e["event"] for e in _events("chat", STOPPED_CHAT)] == ["message", "message_end"]
    agent = _events("agent", STOPPED_CHAT)
    assert [e["event"] for e in agent] == ["agent_message", "message_end"] and agent[0]["answer"] == "Hi"
    chatflow = _events("chatflow", STOPPED_CHAT)
    assert [e["event"] for e in chatflow] == [name for name, _ in STOPPED_CHAT]
    assert chatflow[3]["data"]["status"] == "stopped" and chatflow[3]["workflow_run_id"] == "r1"


def test_a_completion_app_ends_with_message_end_unless_it_failed() -> None:
    for status in ("succeeded", "stopped"):
        shown = _events("completion", [("text_chunk", {"text": "Once"}), ("workflow_finished", {"status": status,
                                                                                               "total_tokens": 5})])
        assert [(e["event"], e.get("answer")) for e in shown] == [("message", "Once"), ("message_end", None)]
        assert shown[-1]["metadata"] == {"usage": {"total_tokens": 5}}
    failed = _events("completion", [("error", {"status": 400, "code": "workflow_failed", "message": "boom"}),
                                    ("workflow_finished", {"status": "failed"})])
    assert [(e["event"], e["code"]) for e in failed] == [("error", "workflow_failed")]


def test_the_stored_message_id_wins_over_the_events_own() -> None:
    """One id everywhere (issue 18): an event that names the run as its message (as the
    orchestrator did) is shown with the stored message's id; a thought keeps its own `id`."""
    script = [("agent_thought", {"id": "th1", "message_id": "r1", "position": 1}),
              ("message", {"id": "r1", "message_id": "r1", "conversation_id": "other", "answer": "Hi"}),
              ("message_end", {"id": "r1", "message_id": "r1", "metadata": {}})]
    thought, message, end = _events("agent", script)
    assert (thought["id"], thought["message_id"]) == ("th1", "m1")
    assert all((e["id"], e["message_id"], e["conversation_id"]) == ("m1", "m1", "c1") for e in (message, end))


class _BatchedFeed:
    """A run feed whose events arrive in batches (as the orchestrator's RunEventBatch does)."""

    def __init__(self, batches: list[list[RunEvent]]) -> None:
        self.batches, self.current = [list(b) for b in batches], []
        self.closed = False

    @property
    def ready(self) -> bool:
        return bool(self.current)

    def __aiter__(self):
        return self

    async def __anext__(self) -> RunEvent:
        if not self.current:
            if not self.batches:
                raise StopAsyncIteration
            self.current = self.batches.pop(0)
        return self.current.pop(0)

    async def aclose(self) -> None:
        self.closed = True


async def test_the_frames_of_a_batch_go_out_as_one_write_in_seq_order() -> None:
    from types import SimpleNamespace

    from loom_gateway.api.sse import run_events

    script = [[("workflow_started", {}), ("node_started", {"node_id": "llm"}), ("message", {"answer": "Once"})],
              [("message", {"answer": " upon a time"})],
              [("node_finished", {"node_id": "llm"}), ("workflow_finished", {"status": "succeeded"}),
               ("message_end", {"metadata": {}})]]
    seqs = iter(range(1, 100))
    batches = [[RunEvent(tenant_id="t1", run_id="r1", seq=next(seqs), event=e, data=d) for e, d in b] for b in script]
    recorded = []

    async def record(run_id, fold):
        recorded.append((run_id, fold.answer))

    g = SimpleNamespace(settings=SimpleNamespace(stream_idle_timeout_s=30),
                        execution=SimpleNamespace(bus=None, record=record))
    for mode, per_write in (("chatflow", [[1, 2, 3], [4], [5, 6, 7]]), ("chat", [[3], [4], [7]])):
        run = StartedRun("r1", "t1", "a1", mode, 0, message_id="m1", conversation_id="c1")
        run.feed = feed = _BatchedFeed(batches)
        writes = [w async for w in run_events(g, run)]
        assert all(isinstance(w, bytes) for w in writes)
        ids = [[int(line[4:]) for line in w.decode().splitlines() if line.startswith("id: ")] for w in writes]
        assert ids == per_write, mode  # one write per batch, its events in order (the shown ones)
        assert all(w.endswith(b"\n\n") and w.count(b"\n\ndata: ") == 0 for w in writes)
        assert feed.closed
    assert recorded == [("r1", "Once upon a time")] * 2
