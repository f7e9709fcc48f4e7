"""Run admission (domain/run_admission.py) against a scripted queue depth: a run under the limit
never waits for the depth's round trip (a stale reading is refreshed in the background), runs
admitted while a reading is out stay counted, and at the limit the depth is read at once before
a run is refused. Unit tests: the queue's depth is a fake, the orderings are what is asserted."""

from __future__ import annotations

import asyncio

import pytest

from loom_gateway.domain.errors import Overloaded
from loom_gateway.domain.run_admission import RunAdmission


class Depth:
    """A queue depth whose readings the test answers one by one."""

    def __init__(self) -> None:
        self.asked: asyncio.Queue[asyncio.Future[int]] = asyncio.Queue()

    async def __call__(self) -> int:
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.asked.put_nowait(answer)
        return await answer

    async def answer(self, depth: int) -> None:
        (await asyncio.wait_for(self.asked.get(), 10)).set_result(depth)


async def test_a_run_under_the_limit_does_not_wait_for_the_depth_and_the_reading_counts_for_later_runs() -> None:
    depth = Depth()
    admission = RunAdmission(depth, max_queued=3, max_age_s=0.0)  # every reading is stale at once
    await admission.admit()  # no reading yet: admitted on the estimate, one requested meanwhile
    await admission.admit()  # the reading is still out: admitted, not asked again
    await depth.answer(1)
    await asyncio.sleep(0)  # the reading lands
    assert depth.asked.empty()
    # The queue's 1 plus the two runs admitted since the reading was asked for.
    assert admission._estimate() == 3
    refused = asyncio.ensure_future(admission.admit())  # at the limit: waits for a reading of its own
    await depth.answer(3)
    with pytest.raises(Overloaded):
        await refused


async def test_at_the_limit_the_depth_is_read_at_once_before_a_run_is_refused() -> None:
    depth = Depth()
    admission = RunAdmission(depth, max_queued=2, max_age_s=3600.0)
    await admission.admit()
    await admission.admit()
    await depth.answer(0)  # the first admission's background reading: the queue was empty
    await asyncio.sleep(0)
    refused = asyncio.ensure_future(admission.admit())  # 0 + 2 admitted since: waits for a reading
    await depth.answer(5)
    with pytest.raises(Overloaded):
        await refused
    waiting = asyncio.ensure_future(admission.admit())  # still at the limit by the last reading
    await depth.answer(0)  # the queue drained: admitted
    await waiting
    assert admission.refused == 1 and admission._estimate() == 1
