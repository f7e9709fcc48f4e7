"""The model's compute threads run at a lower CPU priority than request handling
(`[performance] compute_nice`), so on a shared box the gateway and orchestrator are not
starved by the decode threads."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from loom_inference.backends.llamacpp import usable_cpus
from loom_inference.backends.local import lower_thread_priority
from loom_inference.engine.types import GenerateRequest
from loom_inference.router.factory import build_backend
from loom_inference.settings import InferenceSettings, ModelRoute


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_lowering_a_threads_priority_leaves_the_others_alone() -> None:
    seen: dict[str, int] = {}

    def worker() -> None:
        tid = threading.get_native_id()
        before = _nice(tid)
        lower_thread_priority(3)
        seen["before"], seen["after"] = before, _nice(tid)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["after"] == min(19, seen["before"] + 3)
    assert _nice(threading.get_native_id()) == seen["before"]  # this thread kept its own
    lower_thread_priority(0)  # 0 = leave as is
    assert _nice(threading.get_native_id()) == seen["before"]


@pytest.mark.slow
def test_llamacpp_decode_threads_are_niced_and_the_event_loop_is_not() -> None:
    settings = InferenceSettings()
    settings.performance.compute_nice = 7
    main_nice = _nice(threading.get_native_id())

    before = {int(t) for t in os.listdir(f"/proc/{os.getpid()}/task")}

    async def run() -> tuple[int, set[int]]:
        backend = build_backend(ModelRoute(name="gemma3:270m"), settings)
        try:
            async for _ in backend.generate(GenerateRequest(model="gemma3:270m", prompt="Hi", raw=True)):
                pass
            bridge = await asyncio.get_running_loop().run_in_executor(backend._bridge, threading.get_native_id)
            started = {int(t) for t in os.listdir(f"/proc/{os.getpid()}/task")} - before
            return bridge, {tid for tid in started if _nice(tid) == main_nice + 7}
        finally:
            await backend.close()

    bridge, niced = asyncio.run(run())
    assert bridge in niced  # the thread that calls llama_decode
    if usable_cpus() > 1:  # the runner starts one thread per CPU it may use
        assert len(niced) >= 2  # ... and the OpenMP team it started, which inherited the value
    assert _nice(threading.get_native_id()) == main_nice
