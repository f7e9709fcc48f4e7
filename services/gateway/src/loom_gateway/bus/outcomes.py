"""The gateway's durable consumer of `runs.finished`: every run's outcome, tokens and answer,
recorded whether or not a client watched the run (a webhook's, a schedule's, a stream the
client left, a gateway that died mid-run).

    orchestrator --runs.finished (RUN_OUTCOMES, work queue)--> gateway-run-outcomes --> runs row,
                                                                 (one gateway replica)   message row

Exactly once: the record is idempotent on the run id (`run_records.record_end` writes a run's
end only while it is still running or paused, and only that first write settles its tokens), so
a redelivery, or a client's stream that recorded the same end first, changes nothing. A message
is acked once its record is committed; Postgres down, it is redelivered with back-off
(`messaging.handling`), dead-lettered only after `GATEWAY_RUN_OUTCOMES.max_deliver`.
"""

from __future__ import annotations

from collections.abc import Callable

from faststream.nats import NatsBroker, NatsRouter

from loom_common import bus, messaging
from loom_common.errors import RetryableError
from loom_common.events import RunFinished
from loom_common.logging import get_logger
from loom_gateway.domain.execution import Execution

log = get_logger(__name__)


class NotReady(RetryableError):
    """A run's outcome arrived before the gateway built its stores: delivered again shortly."""

    code = "starting"


class RunNotWrittenYet(RetryableError):
    """The run's row is not committed yet: its request is published alongside that write, and a
    run that ends at once can report its end first. Delivered again shortly."""

    code = "run_not_written_yet"


# Tries for an outcome whose run has no row, 0.25 s x attempt apart (~11 s in all): far longer
# than the write of a run's rows takes, however loaded the database.
UNKNOWN_RUN_TRIES = 10


def outcomes_router(broker: NatsBroker, execution: Callable[[], Execution | None]) -> NatsRouter:
    """`execution()`: the gateway's run domain once built (None while it starts)."""
    router = NatsRouter()
    consumer = bus.GATEWAY_RUN_OUTCOMES

    @router.subscriber(**consumer.subscriber_kwargs())
    async def on_run_finished(end: RunFinished) -> None:
        msg = messaging.current_message(broker)
        async with messaging.handling(msg, consumer, broker):
            runs = execution()
            if runs is None:
                raise NotReady("the gateway is starting", next_retry_delay_s=1.0)
            if await runs.record_finished(end):
                log.debug("run outcome recorded", run_id=end.run_id, status=end.status)
            elif (attempt := messaging.deliveries(msg)) < UNKNOWN_RUN_TRIES:
                raise RunNotWrittenYet(f"run {end.run_id} has no row yet", next_retry_delay_s=0.25 * attempt)
            else:  # never written here (its write failed and the run was taken back): nothing to record
                log.warning("outcome of a run this gateway never recorded", run_id=end.run_id, status=end.status)

    return router
