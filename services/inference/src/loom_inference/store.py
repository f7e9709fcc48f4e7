"""The local model store under `$LOOM_HOME/models`: blobs plus one JSON manifest per model.

    models/
      blobs/<sha256>.gguf            the weights (and a vision model's projector), named by content
      manifests/<safe name>.json     name, path, size, sha256, family, quantization, source

Files, not the database: the `llm-engine` CLI works with no server running, like Ollama's.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class StoredModel:
    name: str
    path: str
    size_bytes: int = 0
    sha256: str = ""
    family: str = ""
    quantization: str = ""
    parameter_size: str = ""
    kind: str = "chat"
    source: str = ""
    pulled_at: float = field(default_factory=time.time)
    # A model made by a Modelfile (/api/create, /api/copy): FROM and what it sets.
    parent: str = ""
    system: str = ""
    template: str = ""
    parameters: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    license: list = field(default_factory=list)
    projector: str = ""   # a vision model's multimodal projector (mmproj) blob, pulled beside it


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.manifests = self.root / "manifests"

    def _manifest(self, name: str) -> Path:
        return self.manifests / f"{_safe(name)}.json"

    def list(self) -> list[StoredModel]:
        if not self.manifests.exists():
            return []
        out = []
        for p in sorted(self.manifests.glob("*.json")):
            try:
                out.append(StoredModel(**json.loads(p.read_text())))
            except (ValueError, TypeError):
                continue
        return out

    def get(self, name: str) -> StoredModel | None:
        p = self._manifest(name)
        if not p.exists():
            p = self._manifest(f"{name}:latest")
        return StoredModel(**json.loads(p.read_text())) if p.exists() else None

    def put(self, model: StoredModel) -> None:
        self.manifests.mkdir(parents=True, exist_ok=True)
        tmp = self._manifest(model.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(model), indent=2))
        tmp.replace(self._manifest(model.name))

    def remove(self, name: str, keep: frozenset[str] = frozenset()) -> bool:
        """Forget a model, and its blob when no other model uses it and it is not in `keep`
        (paths: the bundled GGUF, which other models may be made from, stays)."""
        model = self.get(name)
        if model is None:
            return False
        self._manifest(model.name).unlink(missing_ok=True)
        others = self.list()
        for blob in filter(None, (model.path, model.projector)):
            still_used = any(blob in (m.path, m.projector) for m in others) or blob in keep
            path = Path(blob)
            if not still_used and path.is_relative_to(self.blobs):
                path.unlink(missing_ok=True)
        return True

    def has(self, name: str) -> bool:
        return self._manifest(name).exists()

    def blob_path(self, sha256: str) -> Path:
        self.blobs.mkdir(parents=True, exist_ok=True)
        return self.blobs / f"sha256-{sha256}.gguf"

    def partial_path(self, key: str) -> Path:
        self.blobs.mkdir(parents=True, exist_ok=True)
        return self.blobs / f"{_safe(key)}.partial"
