"""The run lease's arithmetic on a fake clock (lease.py): marks every quarter of the ack wait,
held through a stall shorter than the ack wait less one interval, lost (once, with the run's
task cancelled) past it, and no mark sent once lost. The real-process stalls are in
test_orchestrator_recovery.py."""

from __future__ import annotations

import asyncio

import pytest

from loom_common.testing import eventually
from loom_orchestrator.lease import SAFETY_MARGIN_S, Lease, LeaseLost


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_held_until_the_ack_wait_less_the_margin_has_passed_since_the_last_mark() -> None:
    clock, cancelled = Clock(), []
    lease = Lease("r1", 4.0, clock)
    lease.on_lost(lambda: cancelled.append(True))
    assert lease.interval_s == 1.0
    clock.now += 4.0 - SAFETY_MARGIN_S - 0.01  # a stall just short of the deadline
    lease.check()
    assert not cancelled
    clock.now += 0.02
    with pytest.raises(LeaseLost):
        lease.check()
    assert lease.lost and cancelled == [True]
    with pytest.raises(LeaseLost):  # stays lost, the run's task is cancelled once
        lease.check()
    assert cancelled == [True]


async def test_the_heartbeat_renews_from_the_send_time_and_stops_once_lost() -> None:
    clock, marks = Clock(), []
    lease = Lease("r1", 0.4, clock)  # marks every 0.1 s of real sleep

    async def mark() -> None:
        marks.append(clock.now)
        clock.now += 0.05  # the mark takes a while: the lease counts from when it was sent

    beat = asyncio.create_task(lease.keep(mark))
    try:
        await eventually(lambda: len(marks) >= 3, "three marks")
        assert lease.held()
        clock.now += 1.0  # the whole process froze past the ack wait (SIGSTOP, a blocked loop)
        await asyncio.wait_for(beat, 5)  # the heartbeat noticed and ended without marking again
    finally:
        beat.cancel()
    assert lease.lost and len(marks) == 3


async def test_a_mark_that_fails_does_not_renew() -> None:
    clock = Clock()
    lease = Lease("r1", 0.4, clock)

    async def mark() -> None:
        clock.now += 0.2
        raise ConnectionError("NATS away")

    beat = asyncio.create_task(lease.keep(mark))
    try:
        await asyncio.wait_for(beat, 5)  # two failed marks later the lease has run out
    finally:
        beat.cancel()
    assert lease.lost


def test_the_end_of_a_run_is_recognised_so_a_resumption_does_not_announce_it_twice() -> None:
    from loom_common.events import RunEvent
    from loom_orchestrator.events import announces_end

    def ev(name: str, **data) -> RunEvent:
        return RunEvent(tenant_id="t", run_id="r", seq=9, event=name, task_id="r", data=data)

    assert announces_end(ev("message_end"), chat=True)
    assert not announces_end(ev("workflow_finished", status="succeeded"), chat=True)  # message_end follows
    assert announces_end(ev("workflow_finished", status="failed"), chat=True)  # no message_end after a failure
    assert announces_end(ev("workflow_finished", status="succeeded"), chat=False)
    assert not announces_end(ev("node_finished"), chat=False)
