"""A config route with `backend = "fake"`: the real engine (queue, `max_waiting`) over the
instant FakeRunner, which the load benchmarks use to measure the platform without a model."""

from __future__ import annotations

import asyncio

import pytest

from loom_inference.engine.types import ChatMessage, GenerateRequest, Overloaded, SamplingParams
from loom_inference.router.factory import build_backend
from loom_inference.settings import InferenceSettings, ModelRoute


async def test_inference_fake_route_answers_to_max_tokens_and_bounds_its_queue(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LOOM_HOME", str(tmp_path))
    config = tmp_path / "config.toml"
    config.write_text('[performance]\nmax_parallel = 1\nmax_waiting = 1\n\n'
                      '[[models]]\nname = "fake"\nbackend = "fake"\nparameters = { step_delay_s = 0.01 }\n')
    monkeypatch.setenv("LOOM_INFERENCE_CONFIG", str(config))
    settings = InferenceSettings()
    route = next(r for r in settings.models if r.name == "fake")
    assert isinstance(route, ModelRoute) and route.backend == "fake"
    backend = build_backend(route, settings)
    req = GenerateRequest("fake", messages=[ChatMessage("user", "hi")], sampling=SamplingParams(max_tokens=5))
    try:
        out = [d async for d in backend.generate(req)]
        assert out[-1].usage.completion_tokens == 5 and "".join(d.text for d in out).strip()
        # One decoding, one waiting: the third is refused at once (RESOURCE_EXHAUSTED / 429 upstream).
        long = GenerateRequest("fake", prompt="a", sampling=SamplingParams(max_tokens=400))
        first, second = backend.generate(long), backend.generate(long)
        await anext(first)
        waiter = asyncio.ensure_future(anext(second))
        while len(backend.engine.scheduler.waiting) < 1:  # noqa: ASYNC110 - the engine has no event for it
            await asyncio.sleep(0.01)
        with pytest.raises(Overloaded):
            await anext(backend.generate(long))
        waiter.cancel()
        await first.aclose()
    finally:
        await backend.close()
