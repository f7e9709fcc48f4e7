"""Model management behind /api/pull, /api/delete, /api/show and the CLI: the store plus
keeping the live router in step with it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from loom_inference import gguf
from loom_inference.engine.types import InvalidRequest, ModelInfo, ModelNotFound
from loom_inference.pull import Progress, PullConfig, pull
from loom_inference.pull_policy import PullPolicy
from loom_inference.router.factory import BUNDLED_CHAT, BUNDLED_EMBED, build_backend
from loom_inference.router.router import Router
from loom_inference.settings import InferenceSettings, ModelRoute
from loom_inference.store import ModelStore


class ModelManager:
    def __init__(self, router: Router, settings: InferenceSettings) -> None:
        self.router = router
        self.settings = settings
        self.store = ModelStore(settings.model_store)
        # Only /api/pull pulls through the manager: the API's confined policy, not the CLI's.
        policy = PullPolicy.for_api(pull_dir=settings.pull_dir, registry_url=settings.registry_url,
                                    hf_endpoint=settings.hf_endpoint, allow_hosts=settings.pull_allow_hosts)
        self.pull_config = PullConfig(registry_url=settings.registry_url, hf_endpoint=settings.hf_endpoint,
                                      policy=policy)

    async def pull(self, source: str, *, insecure: bool = False) -> AsyncIterator[Progress]:
        async for p in pull(source, self.store, self.pull_config, insecure=insecure):
            if p.status == "success":
                self._register(source)
            yield p

    def _register(self, source: str) -> None:
        stored = self.store.get(source) or next((m for m in self.store.list() if m.source == source), None)
        if stored is None:
            return
        kind = "embedding" if stored.kind == "embedding" else "chat"
        route = ModelRoute(name=stored.name, backend="llamacpp-embedding" if kind == "embedding" else "llamacpp",
                           kind=kind, path=stored.path, family=stored.family, quantization=stored.quantization)
        backend = build_backend(route, self.settings)
        backend.info.size_bytes = stored.size_bytes
        backend.info.digest = stored.sha256
        self.router.add(backend)

    async def delete(self, name: str) -> None:
        if name in (BUNDLED_CHAT, BUNDLED_EMBED):
            raise InvalidRequest("the bundled models cannot be deleted", "model")
        if not self.store.remove(name):
            raise ModelNotFound(name)
        route = self.router.remove(name)
        if route is not None:
            await route.backend.close()

    def show(self, name: str) -> tuple[ModelInfo, dict[str, object]]:
        info = self.router.resolve(name).info
        meta: dict[str, object] = {}
        if info.path and info.path.endswith(".gguf"):
            try:
                meta = gguf.read_metadata(info.path)
            except (OSError, gguf.NotGguf):
                meta = {}
        if not info.template:
            info.template = str(meta.get("tokenizer.chat_template", ""))
        return info, meta
