"""The durable timer of human-input forms: every `every_s`, each pending form past its deadline
(stored in Postgres, so no restart loses it) is timed out by a resume request on runs.requested,
which the worker applies like an answer (the first of the two wins).

The request's id is derived from the form (`timeout-<form id>`; the gateway's answer is
`answer-<form id>`): JetStream keeps one of two such requests sent within its duplicate window,
and a form is handed out again only after a minute (`PgHumanInputs.due`), in case the publish
was lost.
The clock is injectable (`tick(now)`): tests time a form out without waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from faststream.nats import NatsBroker

from loom_common import bus, messaging
from loom_common.events import HumanInputAnswer, RunRequested
from loom_common.logging import get_logger
from loom_orchestrator.human_inputs import PgHumanInputs

log = get_logger(__name__)


def resume_request(tenant_id: str, run_id: str, answer: HumanInputAnswer) -> RunRequested:
    """A request that resumes `run_id` with `answer`; the worker executes the run's stored request."""
    kind = "timeout" if answer.timed_out else "answer"
    return RunRequested(tenant_id=tenant_id, run_id=run_id, app_id="", resume=answer,
                        event_id=f"{kind}-{answer.form_id}")


async def tick(forms: PgHumanInputs, broker: NatsBroker, now: float) -> int:
    """Time out every form due at `now` (epoch seconds); the number handed out."""
    due = await forms.due(now)
    for f in due:
        answer = HumanInputAnswer(form_id=f.form_id, node_key=f.node_key, action="timeout", timed_out=True,
                                  answered_by="timer")
        await messaging.publish(broker, bus.RUNS_REQUESTED, resume_request(f.tenant_id, f.run_id, answer),
                                stream=bus.RUNS.name)
        log.info("human-input form timed out", run_id=f.run_id, form_id=f.form_id)
    return len(due)


async def run_timer(forms: Callable[[], PgHumanInputs], broker: NatsBroker, every_s: float,
                    clock: Callable[[], float] = time.time) -> None:
    while True:
        try:
            await tick(forms(), broker, clock())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Postgres or NATS away for a moment: the next tick tries again
            log.warning("human-input timer tick failed", error=repr(exc))
        await asyncio.sleep(every_s)
