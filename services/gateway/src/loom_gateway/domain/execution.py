"""Runs as the gateway sees them: start one (rows + `RunRequested`), fold its typed
`RunEvent`s into the answer so far, record its outcome, stop it. (Dify's wire shapes of those
events are the `api/` layer's: `api/sse.py`.)

The run id doubles as Dify's `task_id` and `workflow_run_id`. The gateway never calls a
model for an app: it publishes the request and reads the run's ordered event stream
(`RunBus.events(run_id, after_seq)`), so a client can disconnect and resume from its last seq.

Every run's outcome is recorded from `runs.finished` (`record_finished`, called by the durable
consumer in `bus/outcomes.py`), whether or not a client watched; a client that watched the
whole run records it as soon as it has read the end (`record`), so its next read finds it.
Both write the run's end once: the first record of a final state wins (`run_records.record_end`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from loom_common.dsl.inputs import InputError, check_inputs
from loom_common.events import AnnotationReply, RunCancelRequested, RunEvent, RunFinished, RunRequested
from loom_common.events.runs import (
    AgentThought,
    HumanInputRequired,
    Message,
    MessageEnd,
    NodeFinished,
    RunError,
    TextChunk,
    WorkflowFinished,
    WorkflowPaused,
    WorkflowResumed,
)
from loom_common.ids import new_id
from loom_common.read_replica import Reads
from loom_gateway.domain import dsl
from loom_gateway.domain.errors import BadRequest, NotFound, Upstream, wrong_app_mode
from loom_gateway.domain.rbac import Principal, Role
from loom_gateway.domain.run_admission import RunAdmission
from loom_gateway.store import limits, run_records
from loom_gateway.store.apps import PublishedApp
from loom_gateway.store.conversations import Conversations, check_user, conversation_name

# Runs no key started (schedule ticks, webhook calls): their tokens are charged to the workspace at the end.
TRIGGER_SOURCES = ("schedule", "webhook")
# How many recently ended runs this process remembers (see Execution._ended): far more than
# end within the moment between a client's stream and runs.finished recording the same end.
ENDED_REMEMBERED = 4096


def _no_mark(stage: str) -> None:
    pass


class RunFeed(Protocol):
    """A run's events from seq 1 on, already subscribed; `aclose()` unsubscribes (idempotent)."""

    def __aiter__(self) -> AsyncIterator[RunEvent]: ...
    async def __anext__(self) -> RunEvent: ...
    async def aclose(self) -> None: ...


class RunBus(Protocol):
    async def request(self, event: RunRequested) -> None: ...
    async def cancel(self, event: RunCancelRequested) -> None: ...
    async def open(self, run_id: str) -> RunFeed: ...
    def events(self, run_id: str, after_seq: int = 0, *, follow: bool = True) -> AsyncIterator[RunEvent]: ...


@dataclass
class StartedRun:
    run_id: str
    tenant_id: str
    app_id: str
    mode: str
    created_at: int
    message_id: str | None = None
    conversation_id: str | None = None
    inputs: dict = field(default_factory=dict)
    published_at: float | None = None   # perf_counter() once runs.requested was stored
    # The run's events, subscribed before its request was published (runs this request started);
    # whoever reads them closes it.
    feed: RunFeed | None = field(default=None, repr=False)

    @property
    def chat(self) -> bool:
        return self.mode in dsl.CHAT_MODES

    @property
    def workflow_only(self) -> bool:
        return self.mode == "workflow"


@dataclass
class Fold:
    """What a run's events add up to (the blocking response and the recorded outcome)."""

    answer: str = ""
    outputs: dict[str, Any] | None = None
    status: str = "running"
    error: str | None = None
    error_code: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    total_tokens: int = 0
    total_steps: int = 0
    elapsed_time: float | None = None
    conversation_variables: dict[str, Any] | None = None  # a chatflow turn's, from message_end
    agent_thoughts: list[dict[str, Any]] = field(default_factory=list)  # an agent's rounds, for /v1/messages
    first_text_at: datetime | None = None  # when the orchestrator sent the first answer text (TTFT)
    finished: bool = False
    # Waiting for human-input forms (workflow_paused, not followed by workflow_resumed): not an
    # end, but a stream or a blocking call stops here; the open forms by id.
    paused: bool = False
    human_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_seq: int = 0
    # Every seq after the first one folded came in order: after a gap (an event never stored,
    # skipped by the feed) the run's record is left to its outcome on runs.finished.
    whole: bool = True

    def add(self, ev: RunEvent, chat: bool) -> None:
        if self.last_seq and ev.seq != self.last_seq + 1:
            self.whole = False
        self.last_seq = max(self.last_seq, ev.seq)
        d = ev.data
        if self.first_text_at is None and isinstance(d, Message | TextChunk):
            self.first_text_at = ev.occurred_at
        match d:
            case Message():
                self.answer += d.answer
            case TextChunk():
                self.answer += d.text
            case NodeFinished():
                self.total_steps += 1
                self.human_inputs.pop(d.id, None)
            case HumanInputRequired():
                self.human_inputs[d.form_id] = d.model_dump(exclude={"type"})
            case WorkflowPaused():
                self.status, self.paused = "paused", True
            case WorkflowResumed():
                self.status, self.paused = "running", False
            case AgentThought():
                self.agent_thoughts.append(d.model_dump(exclude={"type"}))
            case MessageEnd():
                self.metadata = d.metadata.model_dump(exclude_none=True)
                if d.conversation_variables is not None:
                    self.conversation_variables = d.conversation_variables
                self.total_tokens = d.metadata.usage.total_tokens
                if self.status == "running":
                    self.status = "succeeded"
                self.finished = True
            case WorkflowFinished():
                self.status = d.status
                self.outputs = d.outputs
                if chat and isinstance((d.outputs or {}).get("answer"), str):
                    # The run's own answer (as on runs.finished): text that a node streamed before
                    # it was retried (node_retry) was shown, but is not part of it.
                    self.answer = d.outputs["answer"]
                self.error = d.error or self.error
                self.total_tokens = d.total_tokens or self.total_tokens
                self.total_steps = d.total_steps or self.total_steps
                self.elapsed_time = d.elapsed_time
                if not chat or self.status == "failed":  # a chat's other ends are followed by message_end
                    self.finished = True
            case RunError():
                # Not the end: the orchestrator follows an error with workflow_finished (status failed).
                self.status = "stopped" if d.code == "stopped" else "failed"
                self.error = d.message
                self.error_code = d.code

    @classmethod
    def of(cls, end: RunFinished) -> Fold:
        """A run's outcome as `runs.finished` carries it, folded as its events would be."""
        return cls(answer=end.answer, outputs=end.outputs, status=end.status, error=end.error,
                   error_code=end.error_code,
                   metadata=end.metadata.model_dump(exclude_none=True) if end.metadata is not None else {},
                   total_tokens=end.usage.total_tokens, total_steps=end.total_steps, elapsed_time=end.elapsed_time,
                   conversation_variables=end.conversation_variables,
                   agent_thoughts=[t.model_dump(exclude={"type"}) for t in end.agent_thoughts],
                   first_text_at=end.first_text_at, finished=end.status != "paused", paused=end.status == "paused",
                   last_seq=end.last_seq)


class Execution:
    def __init__(self, pool: run_records.Pool, conversations: Conversations, bus: RunBus, reads: Reads | None = None,
                 quotas: limits.Limits | None = None, admission: RunAdmission | None = None):
        self.pool = pool
        self.admission = admission  # refuses a run when the run queue is full (None: never)
        self.limits = quotas  # settles a finished run's token reservation (None: in Postgres alone)
        # Run detail and lists read the replica (loom_common.read_replica); see run_detail.
        self.reads = reads or Reads(pool)
        self.conversations = conversations
        self.bus = bus
        # A run's end is recorded twice, by its client's stream and from runs.finished, most
        # often at the same moment: the second record of an end waits for the first one in
        # flight here, or finds it among the ends this process recorded or found recorded (an
        # end never changes again), without a transaction on Postgres.
        self._ended: dict[str, None] = {}
        self._ending: dict[str, asyncio.Future[bool]] = {}

    async def start(self, app: PublishedApp, *, kind: str, user: str | None, inputs: Any, query: str | None = None,
                    conversation_id: str | None = None, files: Any = None, response_mode: str = "streaming",
                    run_id: str | None = None,
                    mark: Callable[[str], None] = _no_mark, invoke_from: str = "service-api",
                    annotation_reply: AnnotationReply | None = None) -> StartedRun:
        """Record the run (and its conversation/message) and publish the request; the run's
        event feed is open on return. `mark("start")` is told when that is done. `app` is a
        published version, or the draft (`version` None) for the console's debugger runs."""
        inputs, files = _check(app, kind, inputs, files, query)
        if self.admission is not None:  # before anything is recorded: a refused run leaves no trace
            await self.admission.admit()
        run = StartedRun(run_id or new_id(), app.tenant_id, app.id, app.mode, int(time.time()), inputs=inputs)
        if kind != "workflow":
            run.message_id = new_id()
        rows = run_records.RunStart(
            run_id=run.run_id, tenant_id=app.tenant_id, app_id=app.id, app_version=app.version, mode=app.mode,
            session=check_user(user), new_end_user_id=new_id(),
            conversation_id=conversation_id if kind == "chat" else None,
            new_conversation_id=new_id() if kind == "chat" and not conversation_id else None,
            conversation_name=conversation_name(query or ""), inputs=inputs, message_id=run.message_id,
            query=query or "", files=files, invoke_from=invoke_from)
        request = RunRequested(
            tenant_id=app.tenant_id, run_id=run.run_id, app_id=app.id, app_mode=app.mode,
            graph=dsl.run_graph(app.dsl), inputs=inputs, query=query,
            conversation_id=rows.conversation_id or rows.new_conversation_id, message_id=run.message_id,
            user=user, files=files,
            response_mode=response_mode, invoke_from=invoke_from,
            annotation_reply=annotation_reply if kind == "chat" else None)
        run.conversation_id, run.feed = await self._record_and_request(rows, request)
        run.published_at = time.perf_counter()
        mark("start")
        return run

    async def _record_and_request(self, rows: run_records.RunStart, request: RunRequested
                                  ) -> tuple[str | None, RunFeed]:
        """Write the run's rows, open its event feed and publish its request, overlapping what
        may overlap (each is a round trip on the path to the first token): the feed subscribes
        before the request is published, so no event waits for a consumer; the publish goes
        alongside the write, except when the write can refuse the request (a conversation the
        caller named must be theirs before a run is asked for)."""
        feed: RunFeed | None = None
        published = False

        async def listen_then_request() -> None:
            nonlocal feed, published
            feed = await self.bus.open(rows.run_id)
            await self.bus.request(request)
            published = True

        try:
            async with asyncio.TaskGroup() as tasks:
                writing = tasks.create_task(run_records.write(self.pool, rows))
                if rows.conversation_id is None:
                    tasks.create_task(listen_then_request())
                else:
                    feed = await self.bus.open(rows.run_id)
            written = writing.result()
            if written is None and rows.conversation_id is not None:
                raise NotFound("Conversation Not Exists.", code="conversation_not_exists")
            if written is None:  # two tries lost a race on the end user's row: let the caller retry
                raise Upstream("The run could not be recorded; try again.", code="conflict", status=503)
            if not published:  # a named conversation: the write came first, so it can hand over
                if written.variables_set:  # the variables a client set since the last turn
                    request = request.model_copy(update={"conversation_variables": written.variables_set})
                await self.bus.request(request)
                published = True
            return written.conversation_id, feed
        except BaseException as exc:
            if feed is not None:
                await feed.aclose()
            if published:  # asked for but not recorded: take it back (best effort)
                with contextlib.suppress(Exception):
                    await self.bus.cancel(RunCancelRequested(tenant_id=rows.tenant_id, run_id=rows.run_id,
                                                             reason="the gateway could not record the run"))
            if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                raise exc.exceptions[0] from None
            raise

    async def record_finished(self, end: RunFinished) -> bool:
        """Record a run's outcome from `runs.finished` (the durable consumer's one call). False
        when this gateway has no row for the run (yet): a run's request is published alongside
        the write of its row, so a run that ends at once can report its end before that write
        commits; the consumer then takes the outcome again shortly (bus/outcomes.py)."""
        written, known = await self._record(end.run_id, Fold.of(end))
        if known is None:
            known = await run_records.exists(self.pool, end.run_id)
        return written or known

    async def record(self, run_id: str, fold: Fold) -> bool:
        """Store a finished run's outcome; idempotent (the first writer of a final state wins).
        True when this call wrote it. A paused run is only marked paused (a later answer or
        timeout resumes it). A fold with a gap in its events records nothing: the run's outcome
        on runs.finished will."""
        written, _ = await self._record(run_id, fold)
        return written

    async def _record(self, run_id: str, fold: Fold) -> tuple[bool, bool | None]:
        """`record`, and whether the run has a row at all (its write may not be committed yet;
        None: not found out on the way)."""
        if not fold.whole:
            return False, None
        if fold.paused and not fold.finished:
            written = await run_records.mark_paused(self.pool, run_id)
            return written, True if written else None
        if not fold.finished:
            return await self._record_end(run_id, fold)
        if run_id in self._ended:
            return False, True
        if (other := self._ending.get(run_id)) is not None and await asyncio.shield(other):
            return False, True  # the other record of this end wrote it (or found it written)
        ending = self._ending[run_id] = asyncio.get_running_loop().create_future()
        ended = False
        try:
            written, known = await self._record_end(run_id, fold)
            ended = written or bool(known)
            if ended:
                self._remember_ended(run_id)
            return written, known
        finally:
            ending.set_result(ended)
            if self._ending.get(run_id) is ending:
                del self._ending[run_id]

    async def _record_end(self, run_id: str, fold: Fold) -> tuple[bool, bool | None]:
        """The run's end in Postgres (run_records.record_end): (written here, the run has a row)."""

        async def settle(conn):  # the tokens it held of a quota become those it used (once: whoever claims them)
            if self.limits is None:
                return await limits.settle_run(conn, run_id, fold.total_tokens)  # in Postgres alone: None
            return await self.limits.settle_run(conn, run_id, fold.total_tokens)

        row, held, known = await run_records.record_end(
            self.pool, run_id, status=fold.status, outputs=fold.outputs, error=fold.error,
            total_tokens=fold.total_tokens, total_steps=fold.total_steps, first_text_at=fold.first_text_at,
            answer=fold.answer, conversation_variables=fold.conversation_variables,
            settle=settle if fold.finished else None,
            metadata={**fold.metadata, **({"agent_thoughts": fold.agent_thoughts} if fold.agent_thoughts else {})})
        # its workspace's and app's next reads come from the primary until the replica has it
        written = [row["tenant_id"], row["app_id"]] if row else []
        if row and fold.finished and row["invoke_from"] in TRIGGER_SOURCES and self.limits is not None:
            # No key reserved a trigger's tokens: its workspace's day count gets what it used (once:
            # only the first recorder of the end gets the row back).
            trigger = Principal(kind="trigger", tenant_id=row["tenant_id"], role=Role.APP_KEY)
            await self.limits.charge_tokens(trigger, fold.total_tokens)
        if held is not None:  # claimed above; counted in Redis once the claim is committed
            assert self.limits is not None
            await self.limits.settle_claimed(held, fold.total_tokens)
        for scope in written:
            self.reads.wrote(scope)
        return row is not None, known

    def _remember_ended(self, run_id: str) -> None:
        self._ended[run_id] = None
        if len(self._ended) > ENDED_REMEMBERED:
            del self._ended[next(iter(self._ended))]  # the oldest (dicts keep insertion order)

    async def read(self, run_id: str, chat: bool) -> Fold:
        """Fold a run's stored events (a paused run's open forms); reads, records nothing."""
        fold = Fold()
        async for ev in self.bus.events(run_id, 0, follow=False):
            fold.add(ev, chat)
            if fold.finished:
                break
        return fold

    async def owned_run(self, tenant_id: str, app_id: str, run_id: str) -> Mapping[str, Any]:
        row = await run_records.get(self.pool, tenant_id, app_id, run_id)
        if row is None:
            raise NotFound("Workflow run not found.", code="not_found")
        return row

    async def stop(self, tenant_id: str, app_id: str, task_id: str, user: str | None) -> None:
        row = await self.owned_run(tenant_id, app_id, task_id)
        end_user = await self.conversations.end_user(tenant_id, app_id, user, create=False)
        if row["end_user_id"] and row["end_user_id"] != end_user:
            raise NotFound("Task not found.", code="not_found")
        await self.bus.cancel(RunCancelRequested(tenant_id=tenant_id, run_id=task_id))

    async def run_detail(self, tenant_id: str, app_id: str, run_id: str) -> dict:
        """A run's record. Read from the replica when it may serve this workspace; a run it does
        not have yet, or has as still running, is read again from the primary (which a run's end
        is written to: another gateway replica may have recorded it a moment ago). A finished
        run's record never changes again, so the replica's is final."""
        r = await run_records.get(self.reads.pool(tenant_id), tenant_id, app_id, run_id)
        if r is None or r["status"] in ("running", "paused"):
            r = await self.owned_run(tenant_id, app_id, run_id)
        finished = r["finished_at"]
        paused, status = {}, r["status"]
        if status == "paused":  # the forms it waits for (answer: POST .../human-inputs)
            fold = await self.read(run_id, r["mode"] in dsl.CHAT_MODES)
            paused = {"human_inputs": list(fold.human_inputs.values())}
            if not fold.paused:  # answered and resumed: running until runs.finished records its end
                paused, status = {}, "running"
        return {"id": r["id"], "workflow_id": r["app_id"], "status": status,
                "inputs": json.loads(r["inputs"]), "outputs": json.loads(r["outputs"]) if r["outputs"] else {},
                "error": r["error"], "total_steps": r["total_steps"], "total_tokens": r["total_tokens"],
                "created_at": int(r["created_at"].timestamp()),
                "finished_at": int(finished.timestamp()) if finished else None,
                "elapsed_time": (finished - r["created_at"]).total_seconds() if finished else None,
                "invoke_from": r["invoke_from"], "debug": r["invoke_from"] in ("debugger", "single-node"),
                **paused}

    async def list_runs(self, tenant_id: str, app_id: str, limit: int, invoke_from: str | None = None
                        ) -> list[dict]:
        """The app's runs, newest first: those of `invoke_from`, else all but single-node runs
        (the editor's node tests are not the app's runs)."""
        run_ids = await run_records.ids(self.reads.pool(tenant_id), tenant_id, app_id, limit, invoke_from)
        return [await self.run_detail(tenant_id, app_id, run_id) for run_id in run_ids]

    async def started(self, tenant_id: str, app_id: str, run_id: str) -> StartedRun:
        """Rebuild a StartedRun from its row (to resume a stream after a reconnect)."""
        r = await self.owned_run(tenant_id, app_id, run_id)
        return StartedRun(r["id"], r["tenant_id"], r["app_id"], r["mode"], int(r["created_at"].timestamp()),
                          r["message_id"], r["conversation_id"], json.loads(r["inputs"]))


def _check(app: PublishedApp, kind: str, inputs: Any, files: Any, query: str | None) -> tuple[dict, list]:
    """The request fits the app (its mode, the query a chat needs); its inputs and files."""
    if kind == "chat" and app.mode not in dsl.CHAT_MODES:
        raise wrong_app_mode("not_chat_app")
    if kind == "completion" and app.mode != "completion":
        raise wrong_app_mode("not_completion_app")
    if kind == "workflow" and app.mode != "workflow":
        raise wrong_app_mode("not_workflow_app")
    inputs, files = _inputs(inputs), _files(files)
    if kind == "chat" and (not isinstance(query, str) or not query.strip()):
        raise BadRequest("query is required", field="query")
    try:  # the start node checks them again; refused here, nothing is recorded or run
        check_inputs(app.form, inputs)
    except InputError as exc:
        raise BadRequest(str(exc), field=f"inputs.{exc.variable}") from None
    return inputs, files


def _inputs(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("inputs must be an object", field="inputs")
    return value


def _files(value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(f, dict) for f in value):
        raise BadRequest("files must be a list of objects", field="files")
    return value
