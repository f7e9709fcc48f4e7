"""Resolve a model name to its backend, enforce per-model concurrency, fall back on failure.

A request goes to its model's backend unless that model is at its `max_concurrency` or its
backend fails before the first token; then each configured fallback is tried in order, and
the stream's `model` field says who served it. A failure after tokens were streamed cannot
be retried transparently and ends the stream with an error.

A workspace may also have remote models of its own (the console's model endpoints,
registered by the gateway): a request naming the workspace (`tenant_id`, the gRPC caller's)
finds them first, and no other workspace sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from loom_common.logging import get_logger
from loom_inference.backends.base import Backend, Embedder
from loom_inference.engine.types import (
    BackendError,
    Delta,
    EmbedResult,
    GenerateRequest,
    InvalidRequest,
    ModelInfo,
    ModelNotFound,
    Overloaded,
)
from loom_inference.router.lifecycle import Lifecycle, managed

log = get_logger("inference.router")


@dataclass
class Route:
    backend: Backend | Embedder
    max_concurrency: int = 0
    fallbacks: list[str] = field(default_factory=list)
    active: int = 0
    source: tuple = ()  # a registered remote model: what it was built from (a same one is kept)
    embedder: Embedder | None = None  # a chat model's own embedding context (made on first embed)

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    @property
    def is_embedder(self) -> bool:
        return self.info.kind == "embedding"


class Router:
    """All that the APIs see (the `EngineClient` of engine/client.py)."""

    def __init__(self, remote_factory: Callable[[str], Backend] | None = None,
                 lifecycle: Lifecycle | None = None,
                 chat_embedder: Callable[[ModelInfo], Embedder | None] | None = None) -> None:
        self.routes: dict[str, Route] = {}
        # When local models load and unload (keep_alive, max_loaded_models): lifecycle.py.
        self.lifecycle = lifecycle or Lifecycle()
        # /api/embed with a chat model, as Ollama does: its GGUF in an embedding context (mean-
        # pooled hidden states); None for models that cannot (remote ones).
        self.chat_embedder = chat_embedder
        self.tenant_routes: dict[str, dict[str, Route]] = {}  # workspace -> its remote models
        # MODEL_API_URL: names no route claims go to this remote provider, created on first use.
        self.remote_factory = remote_factory

    def add(self, backend: Backend | Embedder, *, max_concurrency: int = 0, fallbacks: list[str] | None = None,
            aliases: list[str] | None = None) -> None:
        route = Route(backend, max_concurrency, list(fallbacks or []))
        for name in [backend.info.name, *(aliases or [])]:
            self.routes[name] = route

    def remove(self, name: str) -> Route | None:
        return self.routes.pop(name, None)

    MAX_TENANT_MODELS = 200  # per workspace (the gateway keeps fewer endpoints than this)

    async def register_tenant(self, tenant_id: str, name: str, source: tuple,
                              build: Callable[[], Backend | Embedder]) -> bool:
        """Serve what `build()` makes as `name` to this workspace's requests; True when it
        replaced a different one. The same `source` again keeps the running backend (the
        gateway registers its endpoints again periodically)."""
        routes = self.tenant_routes.setdefault(tenant_id, {})
        old = routes.get(name)
        if old is not None and old.source == source:
            return False
        if old is None and len(routes) >= self.MAX_TENANT_MODELS:
            raise InvalidRequest(f"a workspace registers at most {self.MAX_TENANT_MODELS} models", "name")
        routes[name] = Route(build(), source=source)
        if old is not None:
            await _retire(old)
        return old is not None

    async def remove_tenant(self, tenant_id: str, name: str) -> bool:
        route = self.tenant_routes.get(tenant_id, {}).pop(name, None)
        if route is not None:
            await _retire(route)
        return route is not None

    def resolve(self, name: str, tenant_id: str = "") -> Route:
        own = self.tenant_routes.get(tenant_id) if tenant_id else None
        if own and name in own:
            return own[name]
        route = self.routes.get(name) or self.routes.get(f"{name}:latest") or (
            self.routes.get(name.removesuffix(":latest")) if name.endswith(":latest") else None)
        if route is None and self.remote_factory is not None and name:
            self.add(self.remote_factory(name))
            route = self.routes[name]
        if route is None:
            raise ModelNotFound(name)
        return route

    async def load(self, name: str, keep_alive: float | str | None = "default", tenant_id: str = "") -> bool:
        """Ollama's request with no prompt: load the model and set its keep-alive; with
        keep_alive 0, unload it (`llm-engine stop`). True when it is loaded afterwards."""
        backend = self.resolve(name, tenant_id).backend
        if not managed(backend):
            return True
        if keep_alive == 0 and not backend.resident:  # type: ignore[attr-defined]
            return False
        async with self.lifecycle.use(backend, keep_alive):
            if keep_alive != 0:
                await backend.ready()  # type: ignore[attr-defined]
        return bool(backend.info.loaded)

    def expires_at(self, name: str) -> float | None:
        """When the model unloads if left idle (None: never); for /api/ps."""
        return self.lifecycle.expires_at(self.resolve(name).backend)

    def list_models(self) -> list[ModelInfo]:
        seen: dict[int, ModelInfo] = {}
        for route in self.routes.values():
            seen.setdefault(id(route), route.info)
        return list(seen.values())

    def running(self) -> list[tuple[ModelInfo, int, int]]:
        """(model, running, waiting) for every loaded chat model (for /api/ps)."""
        out, seen = [], set()
        for route in self.routes.values():
            if id(route) in seen or not route.info.loaded:
                continue
            seen.add(id(route))
            load = route.backend.load() if hasattr(route.backend, "load") else (route.active, 0)
            out.append((route.info, *load))
        return out

    async def start(self, names: list[str]) -> None:
        """Load these models one after another, in this order; returns when all are loaded
        (or failed: a request for it says why). Side by side, the embedding model's load
        (importing torch holds the GIL for seconds) made the chat model's first answer wait
        ~7 s after start-up instead of ~1."""
        for name in names:
            with contextlib.suppress(ModelNotFound, BackendError):
                backend = self.resolve(name).backend
                await backend.start()
                ready = getattr(backend, "ready", None)  # local models: wait until it is loaded
                if ready is not None:
                    await ready()
                self.lifecycle.loaded(backend)  # its idle clock (keep_alive) starts now

    async def close(self) -> None:
        seen = set()
        for route in [*self.routes.values(), *(r for own in self.tenant_routes.values() for r in own.values())]:
            if id(route) not in seen:
                seen.add(id(route))
                with contextlib.suppress(Exception):
                    await route.backend.close()
                if route.embedder is not None:
                    with contextlib.suppress(Exception):
                        await route.embedder.close()

    # ---- requests --------------------------------------------------------------------

    def _chain(self, name: str, tenant_id: str = "") -> list[Route]:
        first = self.resolve(name, tenant_id)
        chain, seen = [first], {id(first)}
        for fb in first.fallbacks:
            with contextlib.suppress(ModelNotFound):
                r = self.resolve(fb, tenant_id)
                if id(r) not in seen:
                    chain.append(r)
                    seen.add(id(r))
        return chain

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Delta]:
        chain = self._chain(req.model, req.tenant_id)
        if chain[0].is_embedder:
            raise InvalidRequest(f"{req.model} is an embedding model", "model")
        images = req.images
        if images and not chain[0].info.vision:
            raise _no_vision(req.model, images[0].field)
        last_error: Exception | None = None
        for route in chain:
            if images and not route.info.vision:  # a fallback that cannot see is no fallback
                last_error = _no_vision(route.info.name, images[0].field)
                continue
            if route.max_concurrency and route.active >= route.max_concurrency:
                last_error = Overloaded(f"{route.info.name} is at its concurrency limit ({route.max_concurrency})")
                continue
            route.active += 1
            started = False
            try:
                async with self.lifecycle.use(route.backend, req.keep_alive):
                    stream = route.backend.generate(req)  # type: ignore[union-attr]
                    try:
                        async for delta in stream:
                            started = True
                            delta.model = route.info.name
                            yield delta
                    finally:
                        await stream.aclose()
                return
            except (BackendError, Overloaded) as exc:
                if started:
                    raise
                last_error = exc
                log.warning("model unavailable, trying a fallback", model=route.info.name, error=str(exc))
            finally:
                route.active -= 1
        assert last_error is not None
        raise last_error

    async def embed(self, model: str, inputs: list[str], *, normalize: bool = True,
                    tenant_id: str = "") -> EmbedResult:
        last_error: Exception | None = None
        for route in self._chain(model, tenant_id):
            embedder = route.backend if route.is_embedder else await self._chat_embedder(route)
            if embedder is None:
                raise InvalidRequest(f"{route.info.name} is not an embedding model", "model")
            if route.max_concurrency and route.active >= route.max_concurrency:
                last_error = Overloaded(f"{route.info.name} is at its concurrency limit")
                continue
            route.active += 1
            try:
                result = await embedder.embed(inputs, normalize=normalize)  # type: ignore[union-attr]
                result.model = route.info.name
                return result
            except BackendError as exc:
                last_error = exc
            finally:
                route.active -= 1
        assert last_error is not None
        raise last_error


    async def _chat_embedder(self, route: Route) -> Embedder | None:
        if route.embedder is None and self.chat_embedder is not None:
            route.embedder = await asyncio.to_thread(self.chat_embedder, route.info)  # may join a GGUF
        return route.embedder


def _no_vision(model: str, field: str) -> InvalidRequest:
    """Images sent to a model that cannot read them are refused, never dropped."""
    return InvalidRequest(f"{model} cannot read images (it has no vision projector); send text only", field)


async def _retire(route: Route) -> None:
    """Close a backend no longer routed to, unless a request still streams from it (then the
    backend goes with its last reference)."""
    if route.active == 0:
        with contextlib.suppress(Exception):
            await route.backend.close()
