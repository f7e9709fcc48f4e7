"""The human-input node over in-memory ports: the run pauses (its form announced, nothing after
the node runs, other branches finish), resumes from the journal with the answer as the node's
outputs and its action as the branch, takes the timeout branch, and a paused run's wall time
does not count the pause. The Postgres side (pause vs answer races, the timer) is tested in
test_orchestrator_human_input_store.py; the whole stack in the gateway's e2e test."""

from __future__ import annotations

from orchestrator_testkit import chain, edge, node, tpl

from loom_orchestrator.engine.pause import MemoryHumanInputs

START = node("start", "start", variables=[{"variable": "topic", "type": "text-input", "required": False}])
HUMAN = node("human", "human-input", title="Review", form_content="Please review {{#start.topic#}}",
             fields=[{"name": "reply", "type": "paragraph", "label": "Reply"},
                     {"name": "score", "type": "number", "required": False, "default": 0}],
             user_actions=[{"id": "approve", "title": "Approve"}, {"id": "reject", "title": "Reject"}],
             timeout=1, timeout_unit="hour")


def graph() -> dict:
    return {"nodes": [START, HUMAN, tpl("ok", "approved: {{ r }}", r=["human", "reply"]),
                      tpl("no", "rejected: {{ r }}", r=["human", "reply"]),
                      tpl("late", "nobody answered ({{ t }})", t=["human", "timed_out"]),
                      tpl("side", "side branch ran"),
                      node("end", "end", outputs=[{"variable": "ok", "value_selector": ["ok", "output"]},
                                                  {"variable": "no", "value_selector": ["no", "output"]},
                                                  {"variable": "late", "value_selector": ["late", "output"]},
                                                  {"variable": "side", "value_selector": ["side", "output"]}])],
            "edges": [edge("start", "human"), edge("start", "side"), edge("human", "ok", "approve"),
                      edge("human", "no", "reject"), edge("human", "late", "timeout"),
                      *chain("ok", "end"), *chain("no", "end"), *chain("late", "end"), *chain("side", "end")]}


async def test_the_run_pauses_with_its_form_and_resumes_with_the_answer(harness) -> None:
    forms = harness.services.human_inputs = MemoryHumanInputs()
    paused = await harness.run(graph(), {"topic": "refund #7"}, run_id="r1")
    assert paused.status == "paused"
    names = harness.sink.names()
    assert names[-1] == "workflow_paused" and "workflow_finished" not in names
    [required] = harness.sink.of("human_input_required")
    assert required["form_content"] == "Please review refund #7"
    assert [f["name"] for f in required["fields"]] == ["reply", "score"]
    assert [a["id"] for a in required["user_actions"]] == ["approve", "reject"]
    assert required["expiration_time"] is not None
    assert harness.sink.of("workflow_paused")[0]["form_ids"] == [required["form_id"]]
    # The other branch ran to its end; nothing downstream of the form did.
    finished = {d["node_id"] for d in harness.sink.of("node_finished")}
    assert "side" in finished and not finished & {"ok", "no", "late", "end"}

    forms.answer(required["form_id"], {"reply": "looks fine", "score": 4}, "approve")
    harness.sink.events.clear()
    done = await harness.run(graph(), {"topic": "refund #7"}, run_id="r1")
    assert done.status == "succeeded"
    assert done.outputs["ok"] == "approved: looks fine" and done.outputs["no"] is None
    human = next(d for d in harness.sink.of("node_finished") if d["node_id"] == "human")
    assert human["outputs"] == {"reply": "looks fine", "score": 4, "action_id": "approve", "timed_out": False}
    # The side branch replayed from the journal: not run (nor announced) twice.
    assert "side" not in {d["node_id"] for d in harness.sink.of("node_started")}


async def test_the_other_action_takes_its_own_branch(harness) -> None:
    forms = harness.services.human_inputs = MemoryHumanInputs()
    await harness.run(graph(), run_id="r2")
    form_id = harness.sink.of("human_input_required")[0]["form_id"]
    forms.answer(form_id, {"reply": "no way"}, "reject")
    done = await harness.run(graph(), run_id="r2")
    assert done.outputs["no"] == "rejected: no way" and done.outputs["ok"] is None


async def test_a_timed_out_form_takes_the_timeout_branch_with_defaults(harness) -> None:
    forms = harness.services.human_inputs = MemoryHumanInputs()
    await harness.run(graph(), run_id="r3")
    form_id = harness.sink.of("human_input_required")[0]["form_id"]
    forms.expire(form_id)
    done = await harness.run(graph(), run_id="r3")
    assert done.status == "succeeded"
    assert done.outputs["late"] == "nobody answered (True)"
    human = next(d for d in harness.sink.of("node_finished") if d["node_id"] == "human")
    assert human["outputs"] == {"reply": None, "score": 0, "action_id": "timeout", "timed_out": True}


async def test_a_still_pending_form_pauses_the_run_again_without_a_second_row(harness) -> None:
    forms = harness.services.human_inputs = MemoryHumanInputs()
    await harness.run(graph(), run_id="r4")
    again = await harness.run(graph(), run_id="r4")
    assert again.status == "paused"
    assert len(forms.forms) == 1 and len(forms.asked) == 2


async def test_a_form_without_actions_continues_on_its_one_branch(harness) -> None:
    harness.services.human_inputs = forms = MemoryHumanInputs()
    g = {"nodes": [START, node("h", "human-input", fields=[{"name": "note"}]),
                   node("end", "end", outputs=[{"variable": "note", "value_selector": ["h", "note"]}])],
         "edges": chain("start", "h", "end")}
    assert (await harness.run(g, run_id="r5")).status == "paused"
    forms.answer(harness.sink.of("human_input_required")[0]["form_id"], {"note": "hi"})
    assert (await harness.run(g, run_id="r5")).outputs == {"note": "hi"}


async def test_without_a_form_store_the_node_fails_clearly(harness) -> None:
    out = await harness.run(graph(), run_id="r6")
    assert out.status == "failed" and "form store" in (out.error or "")


def test_the_dsl_refuses_a_form_inside_an_iteration_and_checks_answers() -> None:
    import pytest

    from loom_common.dsl import DSLError, parse_graph
    from loom_common.dsl.human_input import FormError, FormField, UserAction, check_answer

    g = {"nodes": [START, node("it", "iteration", iterator_selector=["sys", "files"], output_selector=["h", "x"]),
                   node("is", "iteration-start", parent="it"), node("h", "human-input", parent="it")],
         "edges": [*chain("start", "it"), *chain("is", "h")]}
    with pytest.raises(DSLError, match="cannot run inside an iteration or loop"):
        parse_graph(g)
    fields = [FormField(name="n", type="number"), FormField(name="ok", type="boolean", required=False)]
    actions = [UserAction(id="a"), UserAction(id="b")]
    assert check_answer(fields, actions, {"n": 2}, "b") == ({"n": 2, "ok": None}, "b")
    for values, action, where in (({"n": True}, "a", "inputs.n"), ({"n": 1, "ok": "yes"}, "a", "inputs.ok"),
                                  ({}, "a", "inputs.n"), ({"n": 1}, None, "action"), ("x", "a", "inputs")):
        with pytest.raises(FormError) as err:
            check_answer(fields, actions, values, action)
        assert err.value.field == where


async def test_a_huge_rendered_content_is_cut_to_fit_an_event(harness) -> None:
    harness.services.human_inputs = MemoryHumanInputs()
    g = {"nodes": [START, node("h", "human-input", form_content="{{#start.topic#}}", fields=[{"name": "ok"}]),
                   node("end", "end", outputs=[])], "edges": chain("start", "h", "end")}
    assert (await harness.run(g, {"topic": "x" * 1_000_000}, run_id="r7")).status == "paused"
    content = harness.sink.of("human_input_required")[0]["form_content"]
    assert content.startswith("xxx") and content.endswith(" [...]") and len(content) < 20_100
