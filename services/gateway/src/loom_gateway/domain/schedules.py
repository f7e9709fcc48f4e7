"""Schedule triggers of workflow apps: a cron expression read in an IANA time zone, stored in
Postgres, fired by whichever gateway replica claims the tick first.

How a tick fires exactly once, whatever the number of replicas:

    each replica, every `poll_s`:  read the schedules whose next_fire_at <= now
    for each:                       UPDATE .. SET next_fire_at = <the next tick after now>
                                    WHERE app_id = .. AND next_fire_at = <the tick it read>
    the replica whose UPDATE changed the row starts the run; the others changed nothing.

Catch-up policy: ticks missed while no gateway ran (or while the app was unpublished) are not
replayed one by one. The first scheduler pass after the downtime fires ONCE for all of them
and moves next_fire_at to the first tick after its clock. A fire is at most once: a replica
that dies between its claim and the run's request loses that tick (logged by the next one).

The table and the claim are store/schedules.py; the rules and the loop are here.
Time comes from an injectable clock (`now`), so tests step minutes without waiting for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter

from loom_common.logging import get_logger
from loom_gateway.domain.errors import BadRequest

if TYPE_CHECKING:
    from loom_gateway.store.schedules import Schedules

log = get_logger(__name__)

Clock = Callable[[], datetime]
MAX_CRON_CHARS = 100


def utcnow() -> datetime:
    return datetime.now(UTC)


def zone(name: str) -> ZoneInfo:
    """An IANA time zone, or a 400 naming `timezone`."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise BadRequest(f"timezone must be an IANA time zone name such as 'Europe/Paris', not {name!r}",
                         field="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"unknown time zone {name!r}", field="timezone") from None


def next_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first tick of `cron`, read in `timezone`, strictly after `after` (as UTC); a 400
    naming `cron` for an expression croniter refuses (five fields; no seconds field)."""
    if not cron or len(cron) > MAX_CRON_CHARS or len(cron.split()) != 5:
        raise BadRequest("cron must be a five-field cron expression (minute hour day month weekday)",
                         field="cron")
    tz = zone(timezone)
    try:
        nxt = croniter(cron, after.astimezone(tz)).get_next(datetime)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise BadRequest(f"invalid cron expression: {exc}", field="cron") from None
    return nxt.astimezone(UTC)


@dataclass(frozen=True)
class Due:
    """A claimed tick: the schedule's app, and the inputs its run gets."""

    app_id: str
    tenant_id: str
    inputs: dict[str, Any]
    tick: datetime


class Scheduler:
    """The loop every gateway replica runs: claim due ticks, start their runs."""

    def __init__(self, schedules: Schedules, fire: Callable[[Due], Awaitable[str]], poll_s: float) -> None:
        self.schedules = schedules
        self.fire = fire  # starts the run, returns its id; raises ApiError when it cannot start
        self.poll_s = poll_s

    async def tick(self) -> list[str]:
        """One pass: the run ids this replica started."""
        started = []
        for due in await self.schedules.claim_due():
            try:
                run_id = await self.fire(due)
            except Exception as exc:  # the tick is spent either way: recorded for the console
                message = getattr(exc, "message", None) or repr(exc)
                log.warning("scheduled run not started", app_id=due.app_id, error=message)
                await self.schedules.fired(due.app_id, None, message)
                continue
            await self.schedules.fired(due.app_id, run_id, None)
            started.append(run_id)
        return started

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # Postgres away a moment: the ticks wait in the table
                log.warning("scheduler pass failed", error=repr(exc))
            await asyncio.sleep(self.poll_s)
