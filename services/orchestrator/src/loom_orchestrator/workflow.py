"""One run, start to finish, in the engine's world: build the variable pool, run the graph,
and announce the run's outcome (workflow_finished, message_end or error) in Dify's shapes, or
its pause on human-input forms (workflow_paused; the run is executed again once answered).

Transport-free: the worker (`worker.py`) gives it the request, the journal, the event sink
and the collaborators, and persists what it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from loom_common.dsl.graph import DSLError, Graph, parse_graph
from loom_common.events import RunRequested
from loom_orchestrator.engine.context import RunContext, Services
from loom_orchestrator.engine.pause import PendingForm, RunPaused
from loom_orchestrator.engine.ports import EventSink, Journal
from loom_orchestrator.engine.runner import Engine, NodeFailed, NodeVersionChanged, RunAborted
from loom_orchestrator.engine.variables import VariablePool
from loom_orchestrator.nodes import registry
from loom_orchestrator.nodes.start import INPUTS_SCOPE

_REGISTRY = registry()


@dataclass
class RunOutcome:
    status: str  # succeeded | partial-succeeded | failed | stopped | paused
    # A failed run's code, in its `error` event and its outcome on runs.finished: clients tell a
    # run to submit again (node_version_changed) from one whose workflow failed.
    error_code: str = "workflow_failed"
    outputs: dict[str, Any] = field(default_factory=dict)
    answer: str = ""
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    steps: int = 0
    elapsed_s: float = 0.0
    conversation_variables: dict[str, Any] = field(default_factory=dict)
    retriever_resources: list[dict[str, Any]] = field(default_factory=list)  # Dify's citations of the answer
    paused: list[PendingForm] = field(default_factory=list)  # the forms a paused run waits for
    annotation_reply: dict[str, Any] | None = None  # message_end metadata of an annotation's answer
    # What the run announced (set by `_finish`): workflow_finished's outputs, message_end's metadata
    # (chats) and the conversation's variables for the gateway's record (chatflows that declare them).
    shown_outputs: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    recorded_variables: dict[str, Any] | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# Keeps a chat's turn (its query, answer and the conversation's variables) for the next turn's memory.
KeepTurn = Callable[[RunOutcome], Awaitable[None]]


def build_pool(graph: Graph, req: RunRequested, run: RunContext, conversation: dict[str, Any],
               dialogue_count: int) -> VariablePool:
    pool = VariablePool()
    pool.set_scope(INPUTS_SCOPE, dict(req.inputs))
    pool.set_scope("sys", {"query": req.query or "", "conversation_id": req.conversation_id or "",
                           "user_id": req.user or "", "app_id": req.app_id, "workflow_run_id": req.run_id,
                           "files": list(req.files), "dialogue_count": dialogue_count})
    pool.set_scope("env", {v.name: v.value for v in graph.environment_variables})
    defaults = {v.name: v.value for v in graph.conversation_variables}
    kept = {**conversation, **(req.conversation_variables or {})}  # values a client set win over kept ones
    pool.set_scope("conversation", {**defaults, **{k: v for k, v in kept.items() if k in defaults}})
    return pool


async def execute_run(req: RunRequested, run: RunContext, services: Services, journal: Journal, events: EventSink,
                      *, conversation: dict[str, Any] | None = None, announce_start: bool = True,
                      observer: Any = None, resumed: bool = False, keep_turn: KeepTurn | None = None) -> RunOutcome:
    """Runs the graph; never raises for a workflow failure (that is an outcome), only for
    infrastructure trouble (journal unreachable) or cancellation. `resumed`: a paused run
    taken up again after an answer or a timeout (announced as workflow_resumed). `keep_turn`:
    called with a chat's successful outcome before its end is announced."""
    t0 = run.clock()
    if announce_start:
        events.emit("workflow_started", {"id": run.run_id, "workflow_run_id": run.run_id, "app_id": run.app_id,
                                         "inputs": dict(req.inputs), "created_at": int(run.accepted_at or t0),
                                         "conversation_id": run.conversation_id, "message_id": run.message_id})
    if resumed:
        events.emit("workflow_resumed", {"id": run.run_id, "workflow_run_id": run.run_id, "created_at": int(t0)})
    if req.annotation_reply is not None and run.chat:
        outcome = _annotated(req, run, events, conversation or {})
        await _keep(run, outcome, keep_turn)
        return _finish(run, events, outcome, t0, None)
    try:
        graph = parse_graph(req.graph)
    except DSLError as exc:
        return _finish(run, events, RunOutcome("failed", error=str(exc)), t0, None)
    pool = build_pool(graph, req, run, conversation or {}, len(services.history) + 1)
    engine = Engine(graph, run, services, journal, events, _REGISTRY, observer)
    # The wall time counts the run's work, not the time it waited paused for a person.
    limit = max(0.001, run.limits.max_wall_s - max(0.0, t0 - (run.accepted_at or t0) - run.paused_s))
    outcome = RunOutcome("succeeded")
    try:
        async with asyncio.timeout(limit):
            state = await engine.execute(pool)
        outcome.status = "partial-succeeded" if state.exceptions else "succeeded"
    except NodeFailed as exc:
        outcome = RunOutcome("failed", error=str(exc))
    except NodeVersionChanged as exc:  # before RunAborted, its base: a deploy's doing, not the workflow's
        outcome = RunOutcome("failed", error=str(exc), error_code="node_version_changed")
    except RunAborted as exc:
        outcome = RunOutcome("failed", error=str(exc))
    except RunPaused as exc:
        outcome = RunOutcome("paused", paused=exc.forms)
    except TimeoutError:
        outcome = RunOutcome("failed", error=f"the run exceeded its wall time of {run.limits.max_wall_s:.0f} s")
    state = engine.state
    outcome.outputs, outcome.answer = state.outputs, "".join(state.answers)
    outcome.prompt_tokens, outcome.completion_tokens, outcome.steps = (
        state.prompt_tokens, state.completion_tokens, state.steps)
    outcome.conversation_variables = dict(pool.scope("conversation") or {})
    outcome.retriever_resources = retriever_resources(state.retrieved)
    await _keep(run, outcome, keep_turn)
    return _finish(run, events, outcome, t0, graph)


async def _keep(run: RunContext, outcome: RunOutcome, keep_turn: KeepTurn | None) -> None:
    """A chat's turn is kept before message_end goes out: a client that asks its next question
    as soon as it reads that event finds this turn in the conversation's memory."""
    if keep_turn is not None and run.chat and outcome.status in ("succeeded", "partial-succeeded"):
        await keep_turn(outcome)


def retriever_resources(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Knowledge-retrieval chunks as Dify's `retriever_resources` (message_end metadata)."""
    out = []
    for position, chunk in enumerate(chunks, start=1):
        meta = chunk.get("metadata") or {}
        out.append({"position": position, "dataset_id": meta.get("dataset_id"),
                    "dataset_name": meta.get("dataset_name", ""), "document_id": meta.get("document_id"),
                    "document_name": meta.get("document_name") or chunk.get("title", ""),
                    "segment_id": meta.get("segment_id"), "score": meta.get("score"),
                    "content": chunk.get("content", "")})
    return out


def _annotated(req: RunRequested, run: RunContext, events: EventSink, conversation: dict[str, Any]) -> RunOutcome:
    """Dify's annotation reply: the gateway matched the query to an annotated question (it owns
    the annotations and embeds the query once, before dispatch); the run streams that answer in
    the usual message events and calls no model. It still runs here, not in the gateway, because
    the orchestrator alone publishes run events: the answer is then resumable and recorded like
    any other (the gateway may not publish on run.*.events)."""
    reply = req.annotation_reply
    assert reply is not None
    events.emit("message", {"id": run.message_id, "message_id": run.message_id,
                            "conversation_id": run.conversation_id, "answer": reply.answer,
                            "created_at": int(run.clock())})
    outcome = RunOutcome("succeeded", answer=reply.answer,
                         annotation_reply={"id": reply.id, "account": {"id": None, "name": "annotation"}})
    # The conversation's variables are kept as they were (no node ran to change them).
    outcome.conversation_variables = {**conversation, **(req.conversation_variables or {})}
    return outcome


# A failed run's code when the bus did not store all of its events by its deadline.
RUN_EVENTS_LOST = "run_events_lost"


def fail(run: RunContext, events: EventSink, outcome: RunOutcome, reason: str, code: str) -> RunOutcome:
    """Announce `outcome` failed with `reason` after all (the work may be done: what it did is
    kept for the record), e.g. when its events were lost (worker.py)."""
    outcome.status, outcome.error, outcome.error_code = "failed", reason, code
    return _finish(run, events, outcome, run.clock() - outcome.elapsed_s, None)


def stopped(run: RunContext, events: EventSink, reason: str) -> RunOutcome:
    """Announce a run stopped by the user (its task was cancelled)."""
    return _finish(run, events, RunOutcome("stopped", error=reason), run.clock(), None)


def _finish(run: RunContext, events: EventSink, outcome: RunOutcome, t0: float, graph: Graph | None) -> RunOutcome:
    now = run.clock()
    outcome.elapsed_s = now - t0
    if outcome.status == "paused":  # not an end: the run is taken up again once its forms are answered
        events.emit("workflow_paused", {
            "id": run.run_id, "workflow_run_id": run.run_id, "status": "paused",
            "form_ids": [f.form_id for f in outcome.paused], "total_steps": outcome.steps,
            "total_tokens": outcome.total_tokens, "created_at": int(run.accepted_at or t0), "paused_at": int(now)})
        return outcome
    if outcome.status == "failed":
        events.emit("error", {"status": 400, "code": outcome.error_code, "message": outcome.error or "failed",
                              "message_id": run.message_id, "conversation_id": run.conversation_id})
    outcome.shown_outputs = outcome.outputs if not run.chat else {"answer": outcome.answer, **outcome.outputs}
    events.emit("workflow_finished", {
        "id": run.run_id, "workflow_run_id": run.run_id, "status": outcome.status,
        "outputs": outcome.shown_outputs,
        "error": outcome.error, "elapsed_time": outcome.elapsed_s, "total_tokens": outcome.total_tokens,
        "total_steps": outcome.steps, "created_at": int(run.accepted_at or t0), "finished_at": int(now)})
    if run.chat:
        outcome.metadata = {"usage": {"prompt_tokens": outcome.prompt_tokens,
                                      "completion_tokens": outcome.completion_tokens,
                                      "total_tokens": outcome.total_tokens},
                            "retriever_resources": outcome.retriever_resources}
        if outcome.annotation_reply is not None:
            outcome.metadata["annotation_reply"] = outcome.annotation_reply
        if graph is not None and graph.conversation_variables:
            # The conversation's variables after this turn, for the gateway's record of the
            # conversation (Dify's GET /conversations/{id}/variables); not part of the SSE event.
            outcome.recorded_variables = outcome.conversation_variables
    if run.chat and outcome.status != "failed":
        end: dict[str, Any] = {"id": run.message_id, "message_id": run.message_id,
                               "conversation_id": run.conversation_id, "metadata": outcome.metadata}
        if outcome.recorded_variables is not None:
            end["conversation_variables"] = outcome.recorded_variables
        events.emit("message_end", end)
    return outcome
