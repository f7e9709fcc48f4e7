"""The engine: runs a compiled graph, scope by scope, node by node, over the ports.

Algorithm (one note, as atop vLLM's scheduler): every edge ends up *taken* or *skipped*.
A node starts when all its incoming edges are resolved and at least one was taken; when
all were skipped it is skipped too and its outgoing edges are skipped in turn. A finished
node takes the outgoing edges whose source handle equals its result's `edge_handle`
("source", an if-else case id, a class id, "fail-branch") and skips the rest. Nodes that
are ready at once run concurrently (bounded by `max_parallel`), so independent branches
overlap, and a join waits for every branch that was taken. The decisions depend only on
node results, never on timing, so a resumed run takes the same path.

Durability: before a node with side effects starts, the journal notes it as running (a
model call's first start: while it starts, see `_node`);
when it ends the journal keeps its inputs, outputs, status, timings and tokens. A resumed
run takes finished nodes' results from the journal without running or announcing them
again, and starts a node that was in flight again at most `max_node_restarts` times.
The records of pure nodes that succeeded are written in the background, several per round
trip (the next node does not wait for them; `execute` returns only once every record is
written): if the worker dies first, a resumed run just runs those pure nodes again, which
is harmless.

Node types are `Node`s (node.py): the engine reads their declared traits (pure, calls a
model, container) and applies their `NodeResult` (answer text, citations, the workflow's
outputs, branch and loop control) the same way for every type. Every record keeps the version
of the node that ran it; a run whose journal holds another version than this worker's fails
with `NodeVersionChanged` before anything runs again (docs/orchestrator.md, "Node versions").

Pauses: a human-input node waiting for its form raises `RunPaused` (pause.py). Its scope lets the
other branches run to their end, starts nothing that needs the waiting node, and raises it
once nothing else can run; `execute` then returns through the caller as a paused outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from typing import Any

from loom_common.dsl.graph import Graph
from loom_common.dsl.graph import Node as GraphNode
from loom_common.dsl.references import references
from loom_orchestrator.engine.context import NodeContext, NodeResult, RunContext, ScopeOutcome, Services
from loom_orchestrator.engine.node import Node, NodeRegistry
from loom_orchestrator.engine.pause import RunPaused
from loom_orchestrator.engine.ports import EventSink, Journal, NodeRecord
from loom_orchestrator.engine.topology import Scope, compile_graph
from loom_orchestrator.engine.variables import VariablePool

FINISHED = ("succeeded", "exception")
SECRET_MASK = "******"  # what events show of a secret environment variable


class NodeFailed(Exception):
    def __init__(self, node_id: str, node_type: str, error: str):
        super().__init__(f"node '{node_id}' ({node_type}) failed: {error}")
        self.node_id, self.node_type, self.error = node_id, node_type, error


class RunAborted(Exception):
    """A run-level limit was hit: no node error strategy applies."""


class NodeVersionChanged(RunAborted):
    """A resumed run's journal holds a node execution of another version than this worker's
    node (or of a type it no longer has): replaying it would mix two codes in one run, so the
    run fails before anything runs again."""

    def __init__(self, key: str, node_type: str, journaled: str | None, current: str | None) -> None:
        now = f"this worker has version {current}" if current else "this worker has no such node type"
        super().__init__(f"node '{key}' ({node_type}) was journaled by version {journaled} and {now}: "
                         "a run cannot resume across a change of a node's code; run it again")
        self.key, self.node_type, self.journaled, self.current = key, node_type, journaled, current


@dataclass
class RunState:
    records: dict[str, NodeRecord] = field(default_factory=dict)
    steps: int = 0
    index: itertools.count = field(default_factory=lambda: itertools.count(1))
    answers: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    streamed: set[str] = field(default_factory=set)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    exceptions: int = 0  # nodes that failed but continued (fail-branch / default-value)
    retrieved: list[dict[str, Any]] = field(default_factory=list)  # knowledge-retrieval chunks, in order


class Engine:
    def __init__(self, graph: Graph, run: RunContext, services: Services, journal: Journal,
                 events: EventSink, registry: NodeRegistry, observer: Any = None) -> None:
        self.scopes = compile_graph(graph, registry)
        # Secret environment variables read as a mask in what events show of a node's inputs and
        # process data (a trace a console reader or API client sees); outputs stay the node's own.
        secrets = [v for v in graph.environment_variables if v.value_type == "secret"]
        self._secret_env = {v.name for v in secrets}
        # (Values under 4 characters are not searched for: masking every "a" would wreck the trace.)
        self._secret_values = sorted({str(v.value) for v in secrets if len(str(v.value or "")) >= 4}, key=len,
                                     reverse=True)
        self.run, self.services, self.journal, self.events = run, services, journal, events
        self.registry = registry
        self.observer = observer  # optional: .node(node_type) -> context manager (spans, metrics)
        self.state = RunState()
        self._slots = asyncio.Semaphore(run.limits.max_parallel)
        self._unwritten: list[NodeRecord] = []  # finished pure nodes not yet journaled
        self._writer: asyncio.Task | None = None
        self._writers: list[asyncio.Task] = []  # every writer started, to await (and surface errors)
        self._tries: dict[str, int] = {}  # node key -> tries so far, while it retries (node_finished's attempts)

    async def execute(self, pool: VariablePool) -> RunState:
        self.state.records = await self.journal.load(self.run.run_id)
        self._check_versions()
        self.state.index = itertools.count(max((r.index for r in self.state.records.values()), default=0) + 1)
        try:
            await self.run_scope(None, pool, "")
        except BaseException:
            await asyncio.gather(*self._writers, return_exceptions=True)
            raise
        await asyncio.gather(*self._writers)  # a failed write fails the run's delivery: it is redelivered
        return self.state

    def _check_versions(self) -> None:
        """Refuse to resume when a journaled node ran with another version of its code than
        this worker's (records from before versions were kept carry the migration's backfill)."""
        for key, rec in sorted(self.state.records.items(), key=lambda kv: kv[1].index):
            impl = self.registry.get(rec.node_type)
            if impl is None or rec.version != impl.version:
                raise NodeVersionChanged(key, rec.node_type, rec.version, impl.version if impl else None)

    def _write_later(self, record: NodeRecord) -> None:
        self._unwritten.append(record)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_unwritten())
            self._writers.append(self._writer)

    async def _write_unwritten(self) -> None:
        while self._unwritten:  # what piled up during a round trip goes in the next one
            batch, self._unwritten = self._unwritten, []
            await self.journal.finished_many(self.run.run_id, batch)

    # ---- scopes ------------------------------------------------------------------------

    async def run_scope(self, container: str | None, pool: VariablePool, prefix: str) -> ScopeOutcome:
        scope = self.scopes[container]
        outcome = ScopeOutcome(pool)
        pending = {nid: len(scope.in_edges[nid]) for nid in scope.nodes}
        taken = dict.fromkeys(scope.nodes, 0)
        tasks: dict[asyncio.Task, str] = {}

        def resolve(target: str, was_taken: bool) -> None:
            pending[target] -= 1
            taken[target] += was_taken
            if pending[target] == 0:
                if taken[target]:
                    start(target)
                else:  # every way in was skipped: so is this node, and everything only it feeds
                    for e in scope.out_edges[target]:
                        resolve(e.target, False)

        def start(nid: str) -> None:
            tasks[asyncio.create_task(self._node(scope, nid, pool, prefix, outcome))] = nid

        start(scope.entry)
        paused: list = []  # forms some branch waits for: the other branches run on, nothing after it starts
        try:
            while tasks:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    nid = tasks.pop(task)
                    try:
                        handle = task.result()
                    except RunPaused as exc:
                        paused += exc.forms
                        continue
                    for e in scope.out_edges[nid]:
                        resolve(e.target, e.source_handle == handle)
            if paused:
                raise RunPaused(paused)
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        return outcome

    # ---- one node ----------------------------------------------------------------------

    async def _node(self, scope: Scope, nid: str, pool: VariablePool, prefix: str, outcome: ScopeOutcome) -> str:
        node = scope.nodes[nid]
        key = prefix + nid
        rec = self.state.records.get(key)
        self.state.steps += 1
        if rec is not None and rec.status in FINISHED:  # done before a redelivery: replay, don't re-run
            self._apply(scope, node, rec, pool, outcome, key)
            return rec.edge_handle
        if self.state.steps > self.run.limits.max_steps:
            raise RunAborted(f"the run exceeded {self.run.limits.max_steps} steps")
        impl = self.registry[node.data.type]
        record = NodeRecord(key=key, node_id=nid, node_type=node.data.type, status="running",
                            index=next(self.state.index), version=impl.version)
        base = self._base_event(node, key, record.index, scope)
        self.events.emit("node_started", {**base, "inputs": self._started_inputs(node, pool),
                                          "created_at": int(self.run.clock())}, nid)
        # Pure nodes (no side effect) are not noted as running: re-running one after a crash
        # is harmless, and skipping the write halves the journal cost of a long template chain.
        noting: asyncio.Task | None = None
        if rec is None and impl.traits.calls_model:
            # A model call's first start: its note goes alongside the call instead of before it
            # (one round trip less before the first token). The call runs in another service,
            # so it cannot be what kills this worker; a worker dying before the note lands only
            # leaves the node unnoted, to be run again like any node in flight.
            noting = asyncio.create_task(self.journal.started(self.run.run_id, record))
            noting.add_done_callback(_retrieve)
        elif not impl.traits.pure or rec is not None:
            record.starts = await self.journal.started(self.run.run_id, record)
            if record.starts > 1 + self.run.limits.max_node_restarts:
                return await self._fail(scope, node, record, base, pool, outcome, key,
                                        RuntimeError(f"node was in flight when its worker died "
                                                     f"{record.starts - 1} times"), 0.0, retry=False)
        t0 = self.run.clock()
        ctx = self._context(scope, node, impl, key, pool)
        try:
            result = await self._attempts(impl, node, ctx, base)
        except (RunAborted, RunPaused, asyncio.CancelledError):
            raise
        except Exception as exc:
            await _noted(noting, record)
            return await self._fail(scope, node, record, base, pool, outcome, key, exc, t0)
        await _noted(noting, record)
        return await self._succeed(scope, node, record, base, pool, outcome, key, result, t0)

    async def _attempts(self, impl: Node[Any], node: GraphNode, ctx: NodeContext, base: dict) -> NodeResult:
        data = node.data
        retry = data.retry_config
        while True:
            try:
                # A container holds no slot while its children run, or nested levels deadlock.
                async with contextlib.AsyncExitStack() as stack:
                    if not impl.traits.container:
                        await stack.enter_async_context(self._slots)
                    if self.observer is not None:
                        stack.enter_context(self.observer.node(data.type, node.id))
                    if ctx.timeout_s:
                        await stack.enter_async_context(asyncio.timeout(ctx.timeout_s))
                    return await impl.run(data, ctx)
            except (RunAborted, RunPaused, asyncio.CancelledError):
                raise
            except Exception as exc:
                if not (retry.retry_enabled and ctx.attempt <= retry.max_retries):
                    raise
                delay_s = min(retry.retry_interval / 1000 * 2 ** (ctx.attempt - 1), 10.0)
                self.events.emit("node_retry", {**base, "error": _describe(exc), "retry_index": ctx.attempt,
                                                "created_at": int(self.run.clock())}, node.id)
                ctx.attempt += 1
                self._tries[ctx.key] = ctx.attempt
                await asyncio.sleep(delay_s)

    async def _succeed(self, scope, node, record, base, pool, outcome, key, result: NodeResult, t0) -> str:
        record.status = "succeeded"
        record.inputs, record.outputs, record.process_data = result.inputs, result.outputs, result.process_data
        record.edge_handle, record.writes = result.edge_handle, result.writes
        record.prompt_tokens, record.completion_tokens = result.prompt_tokens, result.completion_tokens
        record.answer, record.citations = result.answer, result.citations
        record.run_outputs, record.loop_end = result.run_outputs, result.loop_end
        return await self._finish(scope, node, record, base, pool, outcome, key, t0)

    async def _fail(self, scope, node, record, base, pool, outcome, key, exc: Exception, t0, retry=True) -> str:
        data = node.data
        record.error = _describe(exc)
        strategy = data.error_strategy
        if strategy is None or not retry:
            record.status = "failed"
            await self._finish(scope, node, record, base, pool, outcome, key, t0)
            raise NodeFailed(node.id, data.type, record.error)
        record.status = "exception"
        self.state.exceptions += 1
        failure = {"error_message": record.error, "error_type": type(exc).__name__}
        if strategy == "fail-branch":
            record.outputs, record.edge_handle = failure, "fail-branch"
        else:
            record.outputs = {**{d.key: d.value for d in data.default_value}, **failure}
        return await self._finish(scope, node, record, base, pool, outcome, key, t0)

    async def _finish(self, scope, node, record: NodeRecord, base, pool, outcome, key, t0) -> str:
        now = self.run.clock()
        record.elapsed_ms = (now - t0) * 1000 if t0 else 0.0
        if record.status == "succeeded" and self.registry[node.data.type].traits.pure:
            self._write_later(record)
        else:
            await self.journal.finished(self.run.run_id, record)
        if record.status in FINISHED:
            self._apply(scope, node, record, pool, outcome, key)
        tokens = record.prompt_tokens + record.completion_tokens
        self.events.emit("node_finished", {
            **base, "inputs": self._masked(record.inputs), "process_data": self._masked(record.process_data),
            "outputs": record.outputs,
            "status": record.status, "error": record.error, "elapsed_time": record.elapsed_ms / 1000,
            "execution_metadata": {"total_tokens": tokens, "prompt_tokens": record.prompt_tokens,
                                   "completion_tokens": record.completion_tokens,
                                   "attempts": self._tries.pop(key, 1)},
            "created_at": int(t0 or now), "finished_at": int(now)}, node.id)
        return record.edge_handle

    def _apply(self, scope: Scope, node: GraphNode, rec: NodeRecord, pool: VariablePool, outcome: ScopeOutcome,
               key: str) -> None:
        """What a finished node does to the run, from its record: the same for a node that just
        ran and for one a resumed run replays from the journal, whatever its type."""
        pool.set_scope(node.id, rec.outputs)
        for selector, value in rec.writes:
            pool.assign(selector, value)
        self.state.prompt_tokens += rec.prompt_tokens
        self.state.completion_tokens += rec.completion_tokens
        outcome.tokens += rec.prompt_tokens + rec.completion_tokens
        if rec.answer is not None:
            self.state.answers.append(rec.answer)
        self.state.retrieved.extend(rec.citations)
        if rec.run_outputs is not None and scope.container is None:
            self.state.outputs.update(rec.run_outputs)
        outcome.loop_end = outcome.loop_end or rec.loop_end

    # ---- helpers -----------------------------------------------------------------------

    def _started_inputs(self, node: GraphNode, pool: VariablePool) -> dict[str, Any]:
        """`inputs` of node_started (Dify's API lists it): the variables the node reads, by
        selector (`start.query`, `env.region`), as they stand when it starts."""
        selectors = [sel for _, sel in node.data.selectors() if sel]
        selectors += [sel for _, text in node.data.templates() for sel in references(text)]
        out: dict[str, Any] = {}
        for sel in selectors:
            secret = len(sel) > 1 and sel[0] == "env" and sel[1] in self._secret_env
            out[".".join(sel)] = SECRET_MASK if secret else pool.get(sel)
        return out

    def _masked(self, value: Any) -> Any:
        """`value` with every secret environment value replaced by the mask, at any depth."""
        if not self._secret_values:
            return value
        if isinstance(value, str):
            for secret in self._secret_values:
                value = value.replace(secret, SECRET_MASK)
            return value
        if isinstance(value, dict):
            return {k: self._masked(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._masked(v) for v in value]
        return value

    def _base_event(self, node: GraphNode, key: str, index: int, scope: Scope) -> dict[str, Any]:
        base = {"id": self.run.execution_id(key), "node_id": node.id, "node_type": node.data.type,
                "title": node.data.title or node.id, "index": index}
        if scope.container is not None:
            kind = self.scopes[None].nodes.get(scope.container) or next(
                s.nodes[scope.container] for s in self.scopes.values() if scope.container in s.nodes)
            base[f"{kind.data.type}_id"] = scope.container
        return base

    def _context(self, scope: Scope, node: GraphNode, impl: Node[Any], key: str, pool: VariablePool) -> NodeContext:
        data, limits = node.data, self.run.limits
        if data.timeout_s:
            timeout = data.timeout_s
        elif impl.traits.container:
            timeout = 0.0  # bounded by its children's timeouts and the run's wall time
        else:
            timeout = limits.model_timeout_s if impl.traits.calls_model else limits.default_timeout_s

        def emit(event: str, payload: dict[str, Any]) -> None:
            self.events.emit(event, payload, node.id)

        def say(text: str, source: str) -> None:
            if not text:
                return
            if self.run.chat:
                self.events.emit("message", {"id": self.run.message_id, "message_id": self.run.message_id,
                                             "conversation_id": self.run.conversation_id, "answer": text,
                                             "created_at": int(self.run.clock())}, source)
            else:
                self.events.emit("text_chunk", {"text": text, "from_variable_selector": [source, "text"]}, source)

        def stream(text: str) -> None:
            if node.id in scope.stream_to:
                self.state.streamed.add(key)
                say(text, node.id)

        prefix = key[: len(key) - len(node.id)]
        return NodeContext(node_id=node.id, key=key, pool=pool, run=self.run, services=self.services, emit=emit,
                           stream=stream, run_scope=self.run_scope, timeout_s=timeout,
                           say=lambda text: say(text, node.id),
                           streamed=lambda nid: (prefix + nid) in self.state.streamed)


async def _noted(noting: asyncio.Task | None, record: NodeRecord) -> None:
    """Wait for a start note sent alongside the node: the finished record must land after it
    (the note's upsert marks the node running)."""
    if noting is not None:
        record.starts = await noting


def _retrieve(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # a note abandoned with its cancelled node: no "never retrieved" noise


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
