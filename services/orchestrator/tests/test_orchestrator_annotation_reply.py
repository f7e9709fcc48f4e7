"""Annotation reply (Dify's): a run whose request carries the gateway's matched annotation
streams the annotated answer as the message and ends with message_end naming the annotation;
no node runs, so no model is called (the harness has no model client at all: an LLM node
would fail the run). A run without one runs its graph as before."""

from __future__ import annotations

from orchestrator_testkit import chain, node

from loom_common.events import AnnotationReply, RunRequested
from loom_orchestrator.engine.context import RunContext
from loom_orchestrator.workflow import execute_run

GRAPH = {"nodes": [node("start", "start", variables=[]),
                   node("llm", "llm", model={"name": "gemma3:270m"},
                        prompt_template=[{"role": "user", "text": "{{#sys.query#}}"}]),
                   node("answer", "answer", answer="{{#llm.text#}}")],
         "edges": chain("start", "llm", "answer")}


async def _run(harness, reply: AnnotationReply | None, conversation: dict | None = None):
    req = RunRequested(tenant_id="t1", run_id="r1", app_id="app", app_mode="chatflow", graph=GRAPH,
                       query="How do I reset my password?", conversation_id="c1", message_id="m1",
                       annotation_reply=reply)
    ctx = RunContext(run_id="r1", tenant_id="t1", app_id="app", mode="chatflow", conversation_id="c1",
                     message_id="m1")
    return await execute_run(req, ctx, harness.services, harness.journal, harness.sink, conversation=conversation)


async def test_an_annotated_query_is_answered_without_running_the_graph(harness) -> None:
    reply = AnnotationReply(id="ann-1", answer="Use the 'Forgot password' link.", score=0.97)
    outcome = await _run(harness, reply, conversation={"topic": "login"})
    names = [e[1] for e in harness.sink.events]
    assert names == ["workflow_started", "message", "workflow_finished", "message_end"]
    message = harness.sink.events[1][3]
    assert message["answer"] == reply.answer and message["message_id"] == "m1"
    end = harness.sink.events[-1][3]
    assert end["metadata"]["annotation_reply"]["id"] == "ann-1"
    assert end["metadata"]["usage"]["total_tokens"] == 0
    assert outcome.status == "succeeded" and outcome.answer == reply.answer and outcome.steps == 0
    assert outcome.conversation_variables == {"topic": "login"}  # kept for the next turn
    assert harness.journal is not None and not any(e[1] == "node_started" for e in harness.sink.events)


async def test_without_an_annotation_the_graph_runs(harness) -> None:
    outcome = await _run(harness, None)
    # No model client here: the LLM node runs and fails, which proves the graph was reached.
    assert outcome.status == "failed"
    assert any(e[1] == "node_started" and e[2] == "llm" for e in harness.sink.events)
