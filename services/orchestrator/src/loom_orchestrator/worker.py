"""A worker's side of a run: take it from the queue, make it durable, execute or resume it,
persist the outcome, and settle the message.

Ack design: the runs.requested message stays unacked for the whole run. It is recorded
(the runs row) before anything else, a heartbeat (`lease.py`) marks it in progress every
quarter of `runs_ack_wait_s` so a live run is never redelivered, and it is acked only after
the outcome is persisted and its events are published. If the worker dies, JetStream
redelivers the message after `runs_ack_wait_s` (4 s) to another worker, which finds the run
recorded and its finished nodes journaled and resumes. A worker that stalled past its ack
wait (its lease lost) writes nothing more of the run and leaves the message unsettled.
A redelivery of a run whose outcome is already recorded is acked without doing anything (a
run completes exactly once).
Outcomes: once a run's events are stored, its outcome goes on `runs.finished` (the gateway's
durable consumer records it, watched or not), then into the runs row (with a chat's turn, in
the same statement), then the message is acked: a crash in between publishes the same end
again (stored once, recorded once). A run whose events could not be stored by its deadline
is recorded failed, never succeeded.
Pauses: a run that reaches an unanswered human-input form is recorded as paused and its
message acked (no slot, no lease, no message held while a person takes their time); the answer
or the form's timeout comes back as a new request carrying `resume`, which executes the run's
own stored request again from its journal (`human_inputs.py` decides which request resumes it).
Fencing: the claim records the message's delivery number and refuses a lower one, so a
delivery that sat in FastStream's buffer (all slots busy) past the ack wait, while JetStream
redelivered it to another worker, is stale: it runs nothing and leaves the message unsettled.
Infrastructure errors (Postgres down) nack the message with back-off via
`messaging.handling`; a failing workflow is an outcome, not an error, and is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import asyncpg
from faststream.nats import NatsBroker, NatsMessage

from loom_common import bus, messaging
from loom_common.events import RunRequested
from loom_common.ids import new_id
from loom_common.logging import get_logger
from loom_common.read_replica import UNREACHABLE as DB_UNREACHABLE
from loom_common.retry import RetryPolicy
from loom_common.telemetry import current_trace_id
from loom_orchestrator import metrics
from loom_orchestrator.engine.context import RunContext, RunLimits, Services
from loom_orchestrator.events import (
    RunEventPublisher,
    announces_end,
    cancel_requested,
    finished_event,
    publish_finished,
)
from loom_orchestrator.human_inputs import PgHumanInputs
from loom_orchestrator.lease import Lease, LeaseLost
from loom_orchestrator.settings import OrchestratorSettings
from loom_orchestrator.stops import StopsHeard
from loom_orchestrator.store import TERMINAL, ClaimFlush, PgJournal, PgRunStore, SavedTurn
from loom_orchestrator.workflow import RUN_EVENTS_LOST, KeepTurn, RunOutcome, execute_run, fail, stopped

log = get_logger(__name__)

DB_OUTAGE_BACKOFF = RetryPolicy(initial_interval_s=0.5, backoff_coefficient=2.0, maximum_interval_s=2.0)


class Worker:
    def __init__(self, broker: NatsBroker, pool: Callable[[], asyncpg.Pool], settings: OrchestratorSettings,
                 services: Callable[[], Services], consumer: bus.Consumer) -> None:
        self.broker, self._pool, self.settings, self._services = broker, pool, settings, services
        self.consumer = consumer
        self.id = new_id()
        self.limits = RunLimits(max_steps=settings.max_steps, max_wall_s=settings.max_wall_s,
                                default_timeout_s=settings.node_timeout_s, model_timeout_s=settings.model_timeout_s,
                                max_parallel=settings.max_parallel_nodes)
        self.active: dict[str, asyncio.Task] = {}  # run id -> the task executing its graph
        self.handling: set[str] = set()  # runs whose delivery this worker is handling, end to end
        self.stop_reasons: dict[str, str] = {}
        self.stops = StopsHeard()  # stops heard for runs not running here (yet)

    # ---- bus entry points ----------------------------------------------------------------

    async def handle(self, event: RunRequested, msg: NatsMessage) -> None:
        if event.run_id in self.handling and event.resume is not None:
            # An answer to a run this worker is still pausing: it resumes the run once paused.
            for _ in range(int(self.settings.runs_ack_wait_s * 20)):
                await asyncio.sleep(0.05)
                if event.run_id not in self.handling:
                    break
        if event.run_id in self.handling:  # a redelivery of a run this worker is still on (running,
            # flushing its events or recording its outcome): that delivery settles the message
            log.warning("redelivery of a live run ignored", run_id=event.run_id)
            return
        lease = Lease(event.run_id, self.settings.runs_ack_wait_s)
        self.handling.add(event.run_id)
        try:
            async with messaging.handling(msg, self.consumer, self.broker):
                # Marked at once: the message may have waited in FastStream's buffer for a free
                # slot, so the server's ack-wait clock started before this lease's did.
                with contextlib.suppress(Exception):
                    await msg.in_progress()
                beat = asyncio.create_task(lease.keep(lambda: self._mark_in_progress(msg)))
                try:
                    await self._run_through_db_outages(event, msg, lease)
                finally:
                    beat.cancel()
        finally:
            self.handling.discard(event.run_id)

    async def _mark_in_progress(self, msg: NatsMessage) -> None:
        """Mark the message in progress and wait until the server has it: a ping answered after the
        mark (one connection keeps order). While NATS is unreachable the client only buffers the
        mark, which must not count as a renewal of the lease."""
        nc = self.broker.connection
        if not nc.is_connected:  # reconnecting: a mark or a ping would only be buffered
            raise ConnectionError("NATS unreachable: the run's message cannot be marked")
        await msg.in_progress()
        # The lease counts from the send time, so a slow answer (a loaded box) costs no safety;
        # a generous wait only spares a false loss.
        await nc.flush(timeout=max(0.5, self.settings.runs_ack_wait_s / 2))
        if not nc.is_connected:
            raise ConnectionError("NATS connection lost while marking the run's message")

    async def _run_through_db_outages(self, event: RunRequested, msg: NatsMessage, lease: Lease) -> None:
        """Postgres unreachable (restarting, failing over): the run is tried again here, from its
        claim (the same delivery claims again and resumes from the journal), with back-off, for up to
        `db_outage_patience_s`, the heartbeat keeping the message meanwhile. Redelivering instead
        would spend the message's `max_deliver` on the outage (5 deliveries back off 7.5 s in all)
        and dead-letter a run that only had to wait."""
        deadline = time.monotonic() + self.settings.db_outage_patience_s
        attempt = 0
        while True:
            try:
                await self.run(event, delivery=messaging.deliveries(msg), stored_at=messaging.stored_at(msg),
                               lease=lease)
                return
            except DB_UNREACHABLE as exc:
                attempt += 1
                if lease.lost:
                    raise LeaseLost(f"run {event.run_id}: lease lost") from exc
                if time.monotonic() >= deadline:
                    raise
                delay = DB_OUTAGE_BACKOFF.delay_for(attempt)
                log.warning("postgres unreachable; the run will be tried again here", run_id=event.run_id,
                            attempt=attempt, delay_s=delay, error=repr(exc))
                await asyncio.sleep(delay)

    def cancel(self, run_id: str, reason: str) -> bool:
        task = self.active.get(run_id)
        if task is None:
            self.stops.heard(run_id, reason)  # it may be waiting in the queue for this worker
            return False
        self.stop_reasons[run_id] = reason
        task.cancel()  # cancels the node tasks, and with them any gRPC call (generation stops upstream)
        return True

    async def stop_paused(self, run_id: str, reason: str) -> bool:
        """A stop for a run paused on a human-input form (no worker runs it): every worker hears
        it, the one that takes the run off `paused` announces its end and records it stopped."""
        pool = self._pool()
        taken = await PgHumanInputs(pool).take_for_stop(run_id, self.id)
        if taken is None:
            return False
        event, accepted = taken
        chat = event.app_mode in ("chatflow", "chat", "agent")
        last = await messaging.last_run_event(self.broker, run_id)
        events = RunEventPublisher(self.broker, run_id, event.tenant_id, start_seq=last.seq if last else 0)
        ctx = RunContext(run_id=run_id, tenant_id=event.tenant_id, app_id=event.app_id, mode=event.app_mode,
                         conversation_id=event.conversation_id,
                         message_id=(event.message_id or run_id) if chat else None, user=event.user,
                         accepted_at=accepted, limits=self.limits)
        outcome = stopped(ctx, events, reason)
        await events.flush()
        await publish_finished(self.broker, _finished(events, outcome))
        await PgRunStore(pool).finish(run_id, outcome)
        log.info("paused run stopped", run_id=run_id, reason=reason)
        return True

    # ---- one run -------------------------------------------------------------------------

    async def run(self, event: RunRequested, *, delivery: int = 1, stored_at: float | None = None,
                  lease: Lease | None = None) -> RunOutcome | None:
        """Latency matters here (time to first token): all a run waits for before its first
        node is one statement, the claim (record + mark running and, for chats, the
        conversation's turns and variables), and not its flush to disk: the run's events wait for
        that (`store.ClaimFlush`). A run this delivery recorded has no journal and
        no events yet, so neither is read back. The claim raises Superseded
        for a stale `delivery` (a higher-numbered one claimed the run): nothing runs, and the
        message is left unsettled for the delivery that owns it. A stop requested before this
        worker took the run is found in the stops it heard, or looked up when it may not have
        heard it (`stops.py`; `stored_at`: when JetStream stored the request). Every write of
        the run (events, journal, outcome) first checks `lease`: once lost, LeaseLost."""
        pool = self._pool()
        store = PgRunStore(pool)
        forms = PgHumanInputs(pool)
        resumed = event.resume is not None
        if event.resume is not None:
            if not await forms.take(event.tenant_id, event.run_id, event.resume):
                log.info("human-input answer recorded; this request does not resume the run", run_id=event.run_id,
                         form_id=event.resume.form_id)
                return None
            event = await forms.stored_request(event.tenant_id, event.run_id)
        chat = event.app_mode in ("chatflow", "chat", "agent")
        claim = await store.claim(event, current_trace_id(), self.id, chat=chat, delivery=delivery)
        variables = claim.variables
        if claim.status in TERMINAL:
            log.info("run already finished; redelivery acked", run_id=event.run_id)
            return None
        metrics.RUNS_STARTED.inc()
        last = None if claim.created else await messaging.last_run_event(self.broker, event.run_id)
        seq = last.seq if last is not None else 0
        guard = lease.check if lease is not None else None
        ctx = RunContext(run_id=event.run_id, tenant_id=event.tenant_id, app_id=event.app_id, mode=event.app_mode,
                         conversation_id=event.conversation_id,
                         message_id=(event.message_id or event.run_id) if chat else None,
                         user=event.user, accepted_at=claim.accepted_epoch, paused_s=claim.paused_s,
                         limits=self.limits)
        deadline = self._deadline(ctx)
        flushed = ClaimFlush(pool, event.run_id, delivery)  # the claim is written out while the run starts
        events = RunEventPublisher(self.broker, event.run_id, event.tenant_id, start_seq=seq, guard=guard,
                                   muted=last is not None and announces_end(last, chat=chat), deadline=deadline,
                                   ready=flushed.wait)
        services = self._services()
        services.history = claim.history
        services.human_inputs = forms

        async def keep_turn(outcome: RunOutcome) -> None:  # before message_end (workflow.execute_run)
            if event.conversation_id:
                if guard is not None:
                    guard()
                await store.keep_turn(event.run_id, SavedTurn(event.tenant_id, event.conversation_id, event.query or "",
                                                              outcome.answer, outcome.total_tokens,
                                                              outcome.conversation_variables), delivery=delivery)

        metrics.RUNS_ACTIVE.inc()
        try:
            with metrics.run_span(event.run_id, event.app_id, event.app_mode):
                journal = PgJournal(pool, event.tenant_id, fresh=claim.created, guard=guard,
                                    flush=flushed)
                outcome = await self._execute(event, ctx, services, journal, events, variables,
                                              announce_start=seq == 0, stored_at=stored_at, lease=lease,
                                              resumed=resumed, lost_events=claim.lost_events, keep_turn=keep_turn)
                while outcome.status == "paused":
                    await events.flush()  # the form's events before the pause: a client may answer at once
                    if events.lost:  # failed below, not paused: it must not resume to a success
                        break
                    if guard is not None:
                        guard()
                    if await forms.pause(event.run_id, [f.form_id for f in outcome.paused], delivery=delivery):
                        log.info("run paused on human input", run_id=event.run_id, forms=len(outcome.paused))
                        try:  # the gateway marks it paused; its end is recorded either way
                            await publish_finished(self.broker, _finished(events, outcome), deadline)
                        except Exception as exc:
                            log.warning("run's pause not published", run_id=event.run_id, error=repr(exc))
                        stop = self.stops.reason(event.run_id)  # a stop heard while it was pausing
                        if stop is not None:
                            await self.stop_paused(event.run_id, stop)
                        return outcome
                    # A form was answered (or timed out) while the run was pausing: take it up again now.
                    events = RunEventPublisher(self.broker, event.run_id, event.tenant_id, start_seq=events.seq,
                                               guard=guard, deadline=deadline)
                    journal = PgJournal(pool, event.tenant_id, guard=guard)
                    outcome = await self._execute(event, ctx, services, journal, events, variables,
                                                  announce_start=False, stored_at=stored_at, lease=lease,
                                                  resumed=True, keep_turn=keep_turn)
        except BaseException as exc:
            # The run will be redelivered and resumed, and its resumption does not announce the
            # nodes it replays: publish what was emitted so far (briefly), then let go. (With the
            # lease lost, the publisher sends nothing more: the run's new owner announces.)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(events.flush(), 5.0)
            await events.close()
            if lease is not None and lease.lost and not isinstance(exc, LeaseLost):
                raise LeaseLost(f"run {event.run_id}: lease lost") from exc
            raise
        finally:
            metrics.RUNS_ACTIVE.dec()
        if guard is not None:
            guard()  # no turn, events or outcome from a worker that lost the run
        await events.flush()  # events before the outcome: a crash in between replays, never loses them
        if events.lost:  # a client may have missed part of the run: it must not read as a success
            reason = (f"{len(events.lost)} of the run's events (from seq {events.lost[0]}) could not be "
                      "published before its deadline: the message bus did not store them")
            log.error("run failed: events not published", run_id=event.run_id, lost=len(events.lost))
            if guard is not None:
                guard()
            # Journaled before the outcome is published: if that fails too (the bus still down) the
            # run is redelivered, and its next delivery cannot see which events are missing.
            await store.note_lost_events(event.run_id, reason, delivery=delivery)
            events = await self._fail_for_lost_events(ctx, events, outcome, reason, guard, deadline)
        if guard is not None:
            guard()
        await publish_finished(self.broker, _finished(events, outcome), deadline)
        if guard is not None:
            guard()
        await store.finish(event.run_id, outcome, delivery=delivery)
        metrics.RUNS_FINISHED.labels(outcome.status).inc()
        if outcome.status == "failed":
            metrics.RUNS_FAILED.inc()
        log.info("run finished", run_id=event.run_id, status=outcome.status, steps=outcome.steps,
                 error=outcome.error, invoke_from=event.invoke_from)
        return outcome

    async def _fail_for_lost_events(self, ctx: RunContext, events: RunEventPublisher, outcome: RunOutcome,
                                    reason: str, guard: Callable[[], None] | None,
                                    deadline: float) -> RunEventPublisher:
        """`outcome` becomes a failure with `reason`, announced on the run's subject (error,
        workflow_finished) unless the run's last event was stored: its end is then on the
        subject already, and a reader tells the gap by its seqs (the gateway then records the
        run from runs.finished). Returns the publisher the outcome is numbered from."""
        ended = events.lost[-1] != events.seq or outcome.error_code == RUN_EVENTS_LOST
        outcome.paused = []
        announcer = RunEventPublisher(self.broker, ctx.run_id, ctx.tenant_id, start_seq=events.seq, guard=guard,
                                      muted=ended, deadline=deadline)
        fail(ctx, announcer, outcome, reason, RUN_EVENTS_LOST)
        await announcer.flush()  # (lost too, while the bus is down: the run's record says why)
        return announcer

    def _deadline(self, ctx: RunContext) -> float:
        """The run's deadline as a time.monotonic() instant: its wall time from acceptance, not
        counting its pauses (`workflow.execute_run` stops its work there)."""
        accepted = ctx.accepted_at or time.time()
        return time.monotonic() + (accepted + ctx.paused_s + self.limits.max_wall_s - time.time())

    async def _execute(self, event: RunRequested, ctx: RunContext, services: Services, journal: PgJournal,
                       events: RunEventPublisher, variables: dict, *, announce_start: bool,
                       stored_at: float | None = None, lease: Lease | None = None,
                       resumed: bool = False, lost_events: str | None = None,
                       keep_turn: KeepTurn | None = None) -> RunOutcome:
        if lost_events is not None:  # an earlier delivery gave up on some of the run's events
            return fail(ctx, events, RunOutcome("failed"), lost_events, RUN_EVENTS_LOST)
        # A stop published before the run is registered below was not heard as a stop of an active
        # run: remembered by this worker, or (when it may not have heard it) kept by RUN_CONTROL.
        reason = self.stops.reason(event.run_id)
        if reason is not None:
            return stopped(ctx, events, reason)
        task = asyncio.create_task(execute_run(event, ctx, services, journal, events, conversation=variables,
                                               announce_start=announce_start, observer=metrics.Observer(),
                                               resumed=resumed, keep_turn=keep_turn))
        self.active[event.run_id] = task
        if lease is not None:
            lease.on_lost(task.cancel)
        try:
            if not self.stops.covers(stored_at):  # looked up while the run starts
                reason = await cancel_requested(self.broker, event.run_id)
                if reason is not None:
                    self.cancel(event.run_id, reason)
            return await task
        except asyncio.CancelledError:
            reason = self.stop_reasons.pop(event.run_id, None)
            if reason is None or not task.cancelled():
                task.cancel()  # (a no-op once done) this worker is shutting down: the run is redelivered
                raise
            return stopped(ctx, events, reason)
        finally:
            self.active.pop(event.run_id, None)


def _finished(events: RunEventPublisher, outcome: RunOutcome):
    """The outcome as `runs.finished` carries it."""
    return finished_event(
        events, status=outcome.status, answer=outcome.answer, outputs=outcome.shown_outputs or outcome.outputs,
        error=outcome.error, prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
        steps=outcome.steps, elapsed_s=outcome.elapsed_s,
        metadata=outcome.metadata if outcome.status != "failed" else None,
        conversation_variables=outcome.recorded_variables, form_ids=[f.form_id for f in outcome.paused],
        error_code=outcome.error_code)
