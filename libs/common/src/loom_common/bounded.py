"""Run a parser of untrusted input in a child process under limits: the one place Loom does it.

`await call_bounded("pkg.module:function", data, options, Bounds(...))` starts
`python -I -B -m loom_common.bounded_worker`, which sets RLIMIT_AS (memory), RLIMIT_CPU and
no core dumps on itself, then imports the target and calls `function(data, **options)`; the
function returns text. The parent never blocks its event loop (a pipe and a wait), kills the
child's whole process group at the wall-clock limit, and caps what it reads back.

Why a process and not a thread: a parser stuck in C (a PDF's content stream, lxml on a huge
tree) cannot be interrupted in a thread, and a decompression bomb must die of its own memory
limit, not the service's. Each call pays a Python start and the target's imports (a few
hundred ms): meant for documents, not for per-request hot paths.

Every failure is a `BoundedFailure` (a PermanentError: the same input would fail again),
with a message a user can act on:

    BoundedFailure          the target raised (its message), or the child died
     ├── BoundedTimeout     wall-clock or CPU limit reached
     └── BoundedTooLarge    memory limit reached, or the result is over max_output_bytes
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

from loom_common.errors import PermanentError


@dataclass(frozen=True)
class Bounds:
    memory_mb: int = 1024         # address space of the child (the interpreter itself takes ~30 MB)
    cpu_s: int = 30               # CPU seconds
    wall_s: float = 60.0          # wall-clock seconds, start-up included
    max_output_bytes: int = 64 * 1024 * 1024


class BoundedFailure(PermanentError):
    code = "parse_failed"


class BoundedTimeout(BoundedFailure):
    code = "parse_timeout"


class BoundedTooLarge(BoundedFailure):
    code = "parse_too_large"


async def call_bounded(target: str, data: bytes, options: dict[str, Any] | None = None,
                       bounds: Bounds = Bounds()) -> str:
    """`target(data, **options)` in a limited child process; its text, or a BoundedFailure."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-B", "-m", "loom_common.bounded_worker", target, str(bounds.memory_mb),
        str(bounds.cpu_s), json.dumps(options or {}), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(_exchange(proc, data, bounds.max_output_bytes), bounds.wall_s)
    except TimeoutError:
        raise BoundedTimeout(f"parsing took longer than {bounds.wall_s:g} s") from None
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await proc.wait()
    return _verdict(proc.returncode, out, err, bounds)


async def _exchange(proc: asyncio.subprocess.Process, data: bytes, cap: int) -> tuple[bytes, bytes]:
    async def feed() -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
            proc.stdin.write(data)
            await proc.stdin.drain()
            proc.stdin.close()

    async def read(stream: asyncio.StreamReader, limit: int) -> bytes:
        buf = bytearray()
        while chunk := await stream.read(1 << 16):
            buf += chunk
            if len(buf) > limit:
                raise BoundedTooLarge(f"the parsed result is larger than {cap} bytes")
        return bytes(buf)

    _, out, err = await asyncio.gather(feed(), read(proc.stdout, cap + 4096), read(proc.stderr, 1 << 20))
    await proc.wait()
    return out, err


def _verdict(rc: int | None, out: bytes, err: bytes, bounds: Bounds) -> str:
    try:
        report = json.loads(out) if out else None
    except ValueError:
        report = None
    if isinstance(report, dict):
        if report.get("ok"):
            return report["text"]
        if report.get("kind") == "memory":
            raise BoundedTooLarge(f"parsing needed more than {bounds.memory_mb} MiB of memory")
        raise BoundedFailure(str(report.get("error") or "the parser failed"))
    sig = -rc if rc is not None and rc < 0 else 0
    if sig in (signal.SIGXCPU, signal.SIGKILL):
        raise BoundedTimeout(f"parsing used more than {bounds.cpu_s} s of CPU")
    tail = err.decode("utf-8", errors="replace")[-300:]
    if "MemoryError" in tail or sig in (signal.SIGSEGV, signal.SIGABRT):
        raise BoundedTooLarge(f"parsing needed more than {bounds.memory_mb} MiB of memory (or crashed)")
    raise BoundedFailure(f"the parser exited with status {rc}: {tail}".strip())
