"""A paused run as the gateway folds its events (`execution.Fold`) and answers a blocking call
(`blocking_body`): paused with its open forms, running again once resumed, a form closed by its
node's end, and the run's end after a pause. No stack: the events are written here."""

from __future__ import annotations

from loom_common.events import RunEvent
from loom_gateway.api.sse import blocking_body
from loom_gateway.domain.execution import Fold, StartedRun

FORM = {"form_id": "f1", "node_id": "agent", "form_content": "Reply?", "fields": [{"name": "reply"}],
        "user_actions": [], "answerable_by": ["service-api"], "expiration_time": None}


def _fold(script: list[tuple[str, dict]], chat: bool = False) -> Fold:
    fold = Fold()
    for seq, (event, data) in enumerate(script, start=1):
        fold.add(RunEvent(tenant_id="t1", run_id="r1", seq=seq, event=event, data=data), chat)
    return fold


PAUSED = [("workflow_started", {}), ("node_started", {"node_id": "agent"}), ("human_input_required", FORM),
          ("workflow_paused", {"form_ids": ["f1"]})]


def test_a_paused_run_folds_as_paused_with_its_form_and_not_finished() -> None:
    fold = _fold(PAUSED)
    assert (fold.status, fold.paused, fold.finished) == ("paused", True, False)
    assert list(fold.human_inputs) == ["f1"]
    run = StartedRun("r1", "t1", "a1", "workflow", 0)
    body = blocking_body(run, fold)["data"]
    assert body["status"] == "paused" and body["finished_at"] is None
    assert [f["form_id"] for f in body["human_inputs"]] == ["f1"]


def test_a_resumed_run_closes_the_form_and_ends_as_usual() -> None:
    resumed = _fold([*PAUSED, ("workflow_resumed", {}), ("node_finished", {"id": "f1", "node_id": "agent"})])
    assert (resumed.status, resumed.paused, resumed.human_inputs) == ("running", False, {})
    done = _fold([*PAUSED, ("workflow_resumed", {}), ("node_finished", {"id": "f1", "node_id": "agent"}),
                  ("workflow_finished", {"status": "succeeded", "outputs": {"reply": "hi"}})])
    assert (done.status, done.finished, done.outputs) == ("succeeded", True, {"reply": "hi"})


def test_a_paused_chat_answers_with_the_text_so_far_and_its_forms() -> None:
    fold = _fold([("message", {"answer": "An agent will answer."}), *PAUSED[2:]], chat=True)
    run = StartedRun("r1", "t1", "a1", "chatflow", 0, message_id="m1", conversation_id="c1")
    body = blocking_body(run, fold)
    assert body["answer"] == "An agent will answer." and body["status"] == "paused"
    assert [f["form_id"] for f in body["human_inputs"]] == ["f1"]
