"""What a pull may read: which local files, which model packages, which hosts.

Two callers, two trust levels. The CLI is the operator at their own machine: any local path,
any host. `/api/pull` is whoever reaches the model API: local files only under the operator's
pull folder (`LOOM_INFERENCE_PULL_DIR`; none without one), URLs only to public addresses
(`loom_common.ssrf`, enforced on every connection by `pull_guard`) except the configured
registry and Hugging Face endpoints and `LOOM_INFERENCE_PULL_ALLOW_HOSTS`. Both: `pkg:` only
names a catalog model package (never an arbitrary module import), and only regular files are
read (a character device such as /dev/zero or a FIFO would never end).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from loom_inference.engine.types import InvalidRequest
from loom_inference.library import CATALOG

# (host, port): port None = any port of that host.
HostRule = tuple[str, int | None]


def packaged_models() -> frozenset[str]:
    """The model packages `pull pkg:<name>` may import: the catalog's, nothing else."""
    return frozenset(e.source[4:] for e in CATALOG if e.source.startswith("pkg:"))


@dataclass(frozen=True)
class PullPolicy:
    local_roots: tuple[Path, ...] | None = None   # None: any path (the CLI); (): no local file
    guard_urls: bool = False                       # vet every connection with the SSRF rule
    allow: frozenset[HostRule] = frozenset()       # destinations exempt from the vetting

    @classmethod
    def for_api(cls, *, pull_dir: Path | None, registry_url: str, hf_endpoint: str,
                allow_hosts: list[str]) -> PullPolicy:
        rules: set[HostRule] = {_origin(registry_url), _origin(hf_endpoint)}
        rules.update((h.strip().lower().strip("[]"), None) for h in allow_hosts if h.strip())
        roots = (Path(pull_dir).resolve(),) if pull_dir else ()
        return cls(local_roots=roots, guard_urls=True, allow=frozenset(rules))

    def allows(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]").rstrip(".")
        return (host, None) in self.allow or (host, port) in self.allow

    def local_file(self, source: str) -> Path:
        """The file a local source names, refused (one message, exists or not) outside the roots."""
        if self.local_roots is None:
            return Path(source).expanduser()
        if not self.local_roots:
            raise InvalidRequest("local paths cannot be pulled through the API unless the operator "
                                 "sets a pull folder (LOOM_INFERENCE_PULL_DIR)", "model")
        root = self.local_roots[0]
        # Relative names are taken in the pull folder; resolve() follows symlinks and '..', so
        # what is checked is where the bytes really are.
        path = (root / source).resolve() if not source.startswith(("/", "~")) \
            else Path(source).expanduser().resolve()
        if not any(path == r or path.is_relative_to(r) for r in self.local_roots):
            raise InvalidRequest("only files inside the pull folder can be pulled through the API", "model")
        return path

    @staticmethod
    def package(source: str) -> str:
        """The module of a `pkg:` source, if it is a known model package."""
        name = source[4:].replace("-", "_")
        if name not in packaged_models():
            raise InvalidRequest(f"unknown model package {source[4:]!r}; known: {sorted(packaged_models())}",
                                 "model")
        return name


def _origin(url: str) -> HostRule:
    parts = urlsplit(url)
    return (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def open_regular(path: Path) -> BinaryIO:
    """Open a file for reading only if it is a regular file (checked before and after opening)."""
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise InvalidRequest(f"no such file {path}", "model") from None
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}", "model") from None
    if not stat.S_ISREG(before.st_mode):
        raise InvalidRequest(f"{path} is not a regular file", "model")
    # O_NONBLOCK: if the path was swapped for a FIFO after the stat, open does not hang, and the
    # fstat below refuses it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidRequest(f"{path} is not a regular file", "model")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")
