"""The run-event contract (loom_common.events.runs): every event type survives the wire (JSON
out and back, equal and of its own payload class), the union covers every event name, a
version-1 event (untyped `event` + `data`) is lifted, and one that cannot be read is refused
with RunEventUnreadable naming the event. A batch (RunEventBatch, version 3) round-trips through
read_run_events, and a reader of single events refuses it clearly."""

from __future__ import annotations

import json
import typing

import pytest

from loom_common.events import RunEvent, RunEventBatch, RunEventUnreadable, RunFinished, read_run_event, read_run_events
from loom_common.events.runs import RUN_EVENT_SCHEMA, RunEventData, RunEventType, run_event_data

# One realistic payload per event type (as the orchestrator builds them), by name.
SAMPLES: dict[str, dict] = {
    "workflow_started": {"id": "r", "workflow_run_id": "r", "app_id": "a", "inputs": {"x": 1}, "created_at": 1,
                         "conversation_id": "c", "message_id": "m"},
    "workflow_resumed": {"id": "r", "workflow_run_id": "r", "created_at": 2},
    "node_started": {"id": "e1", "node_id": "llm", "node_type": "llm", "title": "LLM", "index": 1,
                     "inputs": {"sys.query": "hi"}, "created_at": 1},
    "node_finished": {"id": "e1", "node_id": "llm", "node_type": "llm", "title": "LLM", "index": 1,
                      "iteration_id": "it", "inputs": {}, "process_data": {"p": [1]}, "outputs": {"text": "hi"},
                      "status": "succeeded", "error": None, "elapsed_time": 0.5,
                      "execution_metadata": {"total_tokens": 3, "prompt_tokens": 1, "completion_tokens": 2,
                                             "attempts": 2}, "created_at": 1, "finished_at": 2},
    "node_retry": {"id": "e1", "node_id": "t", "node_type": "tool", "title": "t", "index": 2, "error": "timed out",
                   "retry_index": 1, "created_at": 1},
    "text_chunk": {"text": "Once", "from_variable_selector": ["llm", "text"]},
    "message": {"id": "m", "message_id": "m", "conversation_id": "c", "answer": "Hi", "created_at": 1},
    "agent_thought": {"id": "th", "message_id": "m", "conversation_id": "c", "position": 1, "thought": "t",
                      "tool": "math", "tool_input": "{}", "observation": "1", "created_at": 1},
    "workflow_finished": {"id": "r", "workflow_run_id": "r", "status": "failed", "outputs": {"a": [1, {"b": None}]},
                          "error": "boom", "elapsed_time": 1.5, "total_tokens": 9, "total_steps": 4,
                          "created_at": 1, "finished_at": 3},
    "message_end": {"id": "m", "message_id": "m", "conversation_id": "c",
                    "metadata": {"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                                 "retriever_resources": [{"position": 1, "content": "x"}],
                                 "annotation_reply": {"id": "an", "account": {"id": None, "name": "annotation"}}},
                    "conversation_variables": {"topic": "hi"}},
    "error": {"status": 400, "code": "workflow_failed", "message": "boom", "message_id": "m", "conversation_id": "c"},
    "iteration_started": {"node_id": "it", "inputs": {"iterator_length": 2}, "created_at": 1},
    "iteration_next": {"node_id": "it", "index": 1, "created_at": 1},
    "iteration_completed": {"node_id": "it", "outputs": {"output": ["a", "b"]}, "steps": 2, "created_at": 1},
    "loop_started": {"node_id": "lp", "inputs": {"n": 0}, "created_at": 1},
    "loop_next": {"node_id": "lp", "index": 1, "created_at": 1},
    "loop_completed": {"node_id": "lp", "outputs": {"n": 2, "loop_round": 2}, "steps": 2, "created_at": 1},
    "human_input_required": {"form_id": "f", "node_id": "h", "node_key": "h", "node_title": "Ask",
                             "form_content": "Reply?", "fields": [{"name": "reply"}], "user_actions": [],
                             "answerable_by": ["service-api"], "expiration_time": None},
    "workflow_paused": {"id": "r", "workflow_run_id": "r", "status": "paused", "form_ids": ["f"], "total_steps": 2,
                        "total_tokens": 0, "created_at": 1, "paused_at": 2},
}


def test_every_event_name_has_a_payload_model_and_a_sample() -> None:
    names = set(typing.get_args(RunEventType))
    models = typing.get_args(typing.get_args(RunEventData)[0])
    assert {m.model_fields["type"].default for m in models} == names == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_event_type_round_trips_through_json(name: str) -> None:
    ev = RunEvent(tenant_id="t", run_id="r", seq=7, task_id="r", node_id="n", data=run_event_data(name, SAMPLES[name]))
    back = read_run_event(ev.model_dump_json())
    assert back == ev and type(back.data) is type(ev.data) and back.event == name
    assert back.version == RUN_EVENT_SCHEMA
    assert back.data.model_dump(exclude={"type"}) | SAMPLES[name] == back.data.model_dump(exclude={"type"})


def test_a_field_the_contract_lacks_fails_the_producer() -> None:
    with pytest.raises(ValueError, match="answr"):
        run_event_data("message", {"answr": "typo"})
    with pytest.raises(ValueError):
        run_event_data("no_such_event", {})


def _v1(seq: int, event: str, data: dict) -> bytes:
    return json.dumps({"type": "run.event", "version": 1, "tenant_id": "t", "run_id": "r", "seq": seq,
                       "task_id": "r", "node_id": None, "event": event, "data": data}).encode()


def test_a_version_1_event_is_lifted_to_the_typed_contract() -> None:
    for name, data in SAMPLES.items():
        ev = read_run_event(_v1(3, name, data))
        assert ev.version == RUN_EVENT_SCHEMA and ev.event == name and ev.seq == 3
        assert ev.data == run_event_data(name, data)


@pytest.mark.parametrize(("raw", "says"), [
    (_v1(4, "message", {"answer": "x", "tokens": 3}), r"seq 4, event message.*data\.message\.tokens"),
    (_v1(5, "node_finished", {"status": "ok", "elapsed_time": "slow"}), r"seq 5.*elapsed_time"),
    (_v1(6, "message_replace", {"answer": "x"}), r"seq 6, event message_replace.*does not match"),
    (json.dumps({"type": "run.event", "version": 3, "tenant_id": "t", "run_id": "r", "seq": 1,
                 "data": {"type": "message"}}).encode(), r"version 3.*unknown here"),
    (b"not json", r"not a JSON object"),
])
def test_an_unreadable_event_is_refused_naming_it(raw: bytes, says: str) -> None:
    with pytest.raises(RunEventUnreadable, match=says):
        read_run_event(raw)


def test_a_run_outcome_round_trips() -> None:
    end = RunFinished(event_id="r.succeeded.9", tenant_id="t", run_id="r", status="succeeded", answer="hi",
                      outputs={"answer": "hi"}, usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                      total_steps=3, elapsed_time=0.2,
                      metadata={"usage": {"total_tokens": 3}, "retriever_resources": []},
                      conversation_variables={"v": 1},
                      agent_thoughts=[run_event_data("agent_thought", SAMPLES["agent_thought"])], last_seq=9)
    assert RunFinished.model_validate_json(end.model_dump_json()) == end


def test_a_batch_of_every_event_type_round_trips_and_a_single_event_reads_as_one() -> None:
    evs = [RunEvent(tenant_id="t", run_id="r", seq=seq, task_id="r", node_id="n", data=run_event_data(name, data))
           for seq, (name, data) in enumerate(sorted(SAMPLES.items()), start=1)]
    batch = RunEventBatch(tenant_id="t", run_id="r", events=evs)
    assert read_run_events(batch.model_dump_json()) == evs
    assert read_run_events(evs[0].model_dump_json()) == [evs[0]]
    assert read_run_events(_v1(3, "message", {"answer": "x"}))[0].data.answer == "x"


def test_a_batch_is_refused_clearly_by_a_single_event_reader_and_a_bad_one_names_its_seqs() -> None:
    evs = [RunEvent(tenant_id="t", run_id="r", seq=seq, data=run_event_data("message", {"answer": "x"}))
           for seq in (4, 5)]
    raw = RunEventBatch(tenant_id="t", run_id="r", events=evs).model_dump_json()
    with pytest.raises(RunEventUnreadable, match=r"version 3.*unknown here"):
        read_run_event(raw)  # what a version-2 reader does with it
    with pytest.raises(RunEventUnreadable, match=r"a batch of seqs 4 to 5.*events\.1\.data"):
        read_run_events(raw.replace('"answer":"x","created_at":0}}]', '"answer":7,"created_at":0}}]'))
    with pytest.raises(RunEventUnreadable, match=r"at least 1 item"):
        read_run_events(raw.replace(raw[raw.index('"events":'):], '"events":[]}'))
