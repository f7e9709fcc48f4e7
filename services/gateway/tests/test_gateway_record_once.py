"""A run's end is recorded twice, by its client's stream and from runs.finished, most often at the
same moment (domain/execution.py): the second record waits for the first one in flight, or finds
the end among those this process recorded, and goes to Postgres only when the first one failed
or found no row."""

from __future__ import annotations

import asyncio

from loom_gateway.domain import execution
from loom_gateway.domain.execution import Execution, Fold


class Reads:
    def wrote(self, scope) -> None:
        pass


def counting(monkeypatch, results: list):
    calls = []

    async def record_end(pool, run_id, **kw):
        calls.append(run_id)
        await asyncio.sleep(0.01)  # a round trip: the other record arrives meanwhile
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(execution.run_records, "record_end", record_end)
    return calls


def ended() -> Fold:
    return Fold(answer="hi", status="succeeded", finished=True, last_seq=3)


ROW = {"tenant_id": "t", "app_id": "a", "invoke_from": "service-api"}


async def test_two_records_of_one_end_at_once_write_it_once(monkeypatch) -> None:
    calls = counting(monkeypatch, [(ROW, None, True)])
    runs = Execution(None, None, None, Reads())
    assert await asyncio.gather(runs.record("r1", ended()), runs.record("r1", ended())) == [True, False]
    assert await runs.record("r1", ended()) is False  # later: remembered
    assert calls == ["r1"]


async def test_the_second_goes_to_postgres_when_the_first_failed_or_found_no_row(monkeypatch) -> None:
    calls = counting(monkeypatch, [ConnectionError("postgres down"), (ROW, None, True)])
    runs = Execution(None, None, None, Reads())
    first, second = await asyncio.gather(runs.record("r2", ended()), runs.record("r2", ended()),
                                         return_exceptions=True)
    assert isinstance(first, ConnectionError) and second is True
    assert calls == ["r2", "r2"]

    calls = counting(monkeypatch, [(None, None, False), (None, None, False)])  # its row not committed yet
    assert [await runs.record("r3", ended()), await runs.record("r3", ended())] == [False, False]
    assert calls == ["r3", "r3"]  # not remembered: the consumer's next delivery tries again
