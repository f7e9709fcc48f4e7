"""Which local models stay loaded, as Ollama decides it.

- `keep_alive` on a request (a duration "5m", "1h30m", seconds, `0` = unload as soon as it is
  idle, negative = keep forever) sets how long its model stays loaded after the model's last
  request; without one, the default (`keep_alive` in the settings: 5 minutes standalone, forever
  in the platform, where the configured default models must stay ready).
- `max_loaded_models` and `max_loaded_bytes`: before a model loads, the least recently used
  idle loaded models are unloaded until it fits. A model serving a request is never unloaded;
  when every loaded model is busy, the load waits for one to finish.

Only backends that can unload and load again (local llama.cpp models, `unload()`) are managed;
the others (remote providers, the embedding models) are always "loaded".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from loom_common.logging import get_logger
from loom_inference.engine.types import InvalidRequest

log = get_logger("inference.lifecycle")

FOREVER: float | None = None  # a keep-alive of None: never unloaded for idleness
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")


def parse_keep_alive(value: str | float | int | None, field: str = "keep_alive") -> float | None:
    """Ollama's keep_alive -> seconds, None meaning forever. Raises InvalidRequest naming the field."""
    if isinstance(value, bool) or value is None:
        raise InvalidRequest("must be a duration such as '5m', '30s', seconds, 0 or -1", field)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        if re.fullmatch(r"\d+(?:\.\d+)?", body):
            seconds = sign * float(body)
        elif body and _DURATION.sub("", body) == "":
            seconds = sign * sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(body))
        else:
            raise InvalidRequest(f"{value!r} is not a duration such as '5m', '30s', 0 or -1", field)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise InvalidRequest("must be a finite duration", field)
    return None if seconds < 0 else seconds


@dataclass
class _State:
    backend: object
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)
    keep_alive: float | None = FOREVER
    expires_at: float | None = None      # wall clock; None: forever
    timer: asyncio.TimerHandle | None = None


def managed(backend: object) -> bool:
    return hasattr(backend, "unload") and hasattr(backend, "resident")


def _size(backend) -> int:
    info = backend.info
    if info.memory_bytes:
        return info.memory_bytes
    with contextlib.suppress(OSError):
        return os.path.getsize(info.path) if info.path else 0
    return 0


class Lifecycle:
    def __init__(self, default_keep_alive: float | None = FOREVER, max_loaded_models: int = 0,
                 max_loaded_bytes: int = 0) -> None:
        self.default_keep_alive = default_keep_alive
        self.max_loaded_models = max_loaded_models
        self.max_loaded_bytes = max_loaded_bytes
        self._states: dict[int, _State] = {}
        self._room: asyncio.Condition | None = None  # made on the running loop

    def _state(self, backend) -> _State:
        state = self._states.get(id(backend))
        if state is None:
            state = self._states[id(backend)] = _State(backend, keep_alive=self.default_keep_alive)
        return state

    def _cond(self) -> asyncio.Condition:
        if self._room is None:
            self._room = asyncio.Condition()
        return self._room

    def expires_at(self, backend) -> float | None:
        """Wall-clock time the model unloads (None: never). A model in use reports its keep-alive
        counted from now, as it is counted from the end of its last request."""
        if not managed(backend):
            return None  # remote and embedding models are never unloaded
        state = self._states.get(id(backend))
        keep_alive = state.keep_alive if state is not None else self.default_keep_alive
        if state is not None and state.expires_at is not None:
            return state.expires_at
        return None if keep_alive is None else time.time() + keep_alive

    # ---- a request's use of a model ------------------------------------------------

    @contextlib.asynccontextmanager
    async def use(self, backend, keep_alive: float | str | None = "default") -> AsyncIterator[None]:
        if not managed(backend):
            yield
            return
        state = self._state(backend)
        state.active += 1
        self._cancel_timer(state)
        try:
            if not backend.resident:
                await self._make_room(backend)
            yield
        finally:
            state.active -= 1
            state.last_used = time.monotonic()
            # The last request's keep_alive (or the default when it names none) sets the timer.
            state.keep_alive = self.default_keep_alive if keep_alive == "default" else keep_alive
            if state.active == 0:
                if state.keep_alive == 0:
                    await self._unload(state)  # now: `llm-engine stop` returns once it is gone
                else:
                    self._schedule(state)
            cond = self._cond()
            async with cond:
                cond.notify_all()

    def loaded(self, backend) -> None:
        """A model loaded outside a request (at start-up): its idle clock starts now."""
        if managed(backend):
            state = self._state(backend)
            if state.active == 0:
                self._schedule(state)

    def forget(self, backend) -> None:
        """A model no longer served (deleted, replaced): its timer goes with it."""
        state = self._states.pop(id(backend), None)
        if state is not None:
            self._cancel_timer(state)

    # ---- loading and unloading -----------------------------------------------------

    async def _make_room(self, backend) -> None:
        cond = self._cond()
        async with cond:
            while not backend.resident:
                victims = self._victims(backend)
                if victims is None:  # every model in the way is busy: wait for one to finish
                    await cond.wait()
                    continue
                for victim in victims:
                    log.info("unloading least recently used model", model=victim.backend.info.name,
                             loading=backend.info.name)
                    await self._unload(victim)
                await backend.start()  # resident from here: a concurrent load counts it

    def _victims(self, backend) -> list[_State] | None:
        """The idle models to unload, least recently used first, so `backend` fits (None: it
        would fit only by unloading a busy one)."""
        resident = [s for s in self._states.values() if s.backend is not backend and s.backend.resident]
        count, total = len(resident) + 1, sum(_size(s.backend) for s in resident) + _size(backend)
        out = []
        for state in sorted((s for s in resident if s.active == 0), key=lambda s: s.last_used):
            if not self._over(count, total):
                break
            out.append(state)
            count, total = count - 1, total - _size(state.backend)
        if self._over(count, total):
            # Nothing more idle to unload. A single model bigger than the budget still loads
            # when it is alone (as Ollama does), rather than never.
            return None if count > 1 else out
        return out

    def _over(self, count: int, total: int) -> bool:
        return bool((self.max_loaded_models and count > self.max_loaded_models)
                    or (self.max_loaded_bytes and total > self.max_loaded_bytes and count > 1))

    def _schedule(self, state: _State) -> None:
        self._cancel_timer(state)
        if state.keep_alive is None:
            state.expires_at = None
            return
        state.expires_at = time.time() + state.keep_alive
        loop = asyncio.get_running_loop()
        state.timer = loop.call_later(state.keep_alive, lambda: loop.create_task(self._expire(state)))

    def _cancel_timer(self, state: _State) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        state.expires_at = None

    async def _expire(self, state: _State) -> None:
        if state.active == 0 and state.backend.resident:
            log.info("unloading idle model", model=state.backend.info.name)
            await self._unload(state)

    async def _unload(self, state: _State) -> None:
        self._cancel_timer(state)
        with contextlib.suppress(Exception):
            await state.backend.unload()
