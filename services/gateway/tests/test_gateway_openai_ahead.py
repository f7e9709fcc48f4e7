"""The OpenAI route asks the model before its response's head goes out (openai_compat.AskedAhead):
the first item is asked for at once, errors still come out of the iteration, and aclose()
closes the generation whether or not it was ever iterated."""

from __future__ import annotations

import asyncio

import pytest

from loom_gateway.api.openai_compat import AskedAhead


class Generation:
    def __init__(self, items: list, error: Exception | None = None, *, hold: bool = False) -> None:
        self.items, self.error, self.hold = items, error, hold
        self.asked = asyncio.Event()
        self.closed = False

    async def run(self):
        try:
            self.asked.set()
            if self.hold:  # the model's first token, still to come
                await asyncio.Event().wait()
            for item in self.items:
                yield item
            if self.error is not None:
                raise self.error
        finally:
            self.closed = True


async def test_the_first_item_is_asked_for_before_iteration_starts() -> None:
    gen = Generation(["a", "b"])
    items = AskedAhead(gen.run())
    await asyncio.wait_for(gen.asked.wait(), 5)  # nobody iterates yet
    assert [x async for x in items] == ["a", "b"] and gen.closed


async def test_errors_come_out_of_the_iteration() -> None:
    for gen in (Generation([], ConnectionError("down")), Generation(["a"], ConnectionError("down"))):
        seen = []
        with pytest.raises(ConnectionError):
            async for x in AskedAhead(gen.run()):
                seen.append(x)
        assert seen == gen.items and gen.closed


async def test_aclose_closes_the_generation_iterated_or_not() -> None:
    gen = Generation(["a", "b"])
    items = AskedAhead(gen.run())
    assert await anext(items) == "a"
    await items.aclose()
    assert gen.closed

    waiting = Generation(["late"], hold=True)
    items = AskedAhead(waiting.run())
    await asyncio.wait_for(waiting.asked.wait(), 5)
    await items.aclose()  # never iterated, its first step still waiting
    assert waiting.closed and items.first.cancelled()

    failed = Generation([], ConnectionError("down"))
    items = AskedAhead(failed.run())
    await asyncio.wait([items.first])
    await items.aclose()  # its error, never iterated to, is retrieved (no "never retrieved" log)
    assert failed.closed
