"""The sandbox gaps of issue 18 (point 4), each attack run for real in bubblewrap:
files written to tmpfs escaped the memory limit, a nested user namespace could be made,
nothing filtered syscalls, and nothing capped how many sandboxes ran at once."""

from __future__ import annotations

import asyncio

import pytest

from loom_tools.domain.types import Call
from loom_tools.errors import SandboxBusy
from loom_tools.sandbox.runner import Limits, Sandbox

LIMITS = Limits(cpu_s=4, memory_mb=256, wall_s=20.0, tmpfs_mb=16, max_concurrent=2, queue_wait_s=60.0)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    sb = Sandbox(LIMITS)
    if not sb.isolated:
        pytest.fail(f"bubblewrap/seccomp is not usable here: the sandbox would run degraded ({sb.layers})")
    return sb


@pytest.mark.parametrize("folder", ["/tmp", "/scratch"])
async def test_tools_sandbox_tmpfs_is_sized(sandbox, folder):
    """383 MB once went into tmpfs past a 256 MiB memory limit: each tmpfs now holds tmpfs_mb."""
    code = ("def main(folder):\n    written = 0\n    for i in range(100):\n"
            "        with open(f'{folder}/f{i}', 'wb') as f:\n"
            "            f.write(b'x' * (4 << 20))\n        written += 4\n    return {'mb': written}")
    with pytest.raises(Exception) as err:
        await sandbox.run("python", code, {"folder": folder}, 20)
    assert err.value.code == "sandbox_limit" and "disk limit" in err.value.message, err.value
    # below the cap, files work as before
    small = "def main(folder):\n    open(f'{folder}/a', 'w').write('hi')\n    return {'r': open(f'{folder}/a').read()}"
    assert await sandbox.run("python", small, {"folder": folder}, 20) == {"r": "hi"}


async def test_tools_sandbox_no_nested_user_namespace(sandbox):
    code = r"""
import ctypes, os, subprocess
def main():
    libc = ctypes.CDLL(None, use_errno=True)
    out = {}
    for name, flag in (("user", 0x10000000), ("mount", 0x00020000), ("net", 0x40000000)):
        rc = libc.unshare(flag)
        out[name] = (rc, ctypes.get_errno())
    done = subprocess.run(["/usr/bin/unshare", "-U", "-r", "id"], capture_output=True, text=True)
    out["cmd"] = (done.returncode, done.stdout)
    return out
"""
    out = await sandbox.run("python", code, {}, 20)
    for name in ("user", "mount", "net"):
        assert out[name] == [-1, 1], (name, out)  # EPERM
    assert out["cmd"][0] != 0 and "uid=0" not in out["cmd"][1]


async def test_tools_sandbox_seccomp_refuses_kernel_surface(sandbox):
    """Calls an unfiltered process may make (ptrace on itself, a keyring, BPF, io_uring) are
    refused with EPERM; ordinary work (threads, a child process) still runs."""
    code = r"""
import ctypes, os, subprocess, threading
def main():
    libc = ctypes.CDLL(None, use_errno=True)
    def call(*args):
        rc = libc.syscall(*args)
        return (rc, ctypes.get_errno())
    out = {"ptrace": (libc.ptrace(0, 0, 0, 0), ctypes.get_errno()),   # PTRACE_TRACEME
           "keyctl": call(250, 0, 0, 0, 0),                            # keyctl(GET_KEYRING_ID)
           "bpf": call(321, 0, 0, 0),
           "io_uring_setup": call(425, 1, 0)}
    box = []
    t = threading.Thread(target=lambda: box.append(1)); t.start(); t.join()
    out["thread"] = box == [1]
    out["child"] = subprocess.run(["/usr/bin/true"]).returncode
    return out
"""
    out = await sandbox.run("python", code, {}, 20)
    for name in ("ptrace", "keyctl", "bpf", "io_uring_setup"):
        assert out[name] == [-1, 1], (name, out)
    assert out["thread"] is True and out["child"] == 0


SLEEPER = ("import time\ndef main(i):\n    start = time.monotonic()\n    time.sleep(1.5)\n"
           "    return {'i': i, 'start': start, 'end': time.monotonic()}")


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    now = best = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


async def _peaks(admission, work):
    """Run `work`, sampling the admission counters meanwhile: (most running, most waiting)."""
    peak = {"running": 0, "waiting": 0}

    async def sample() -> None:
        while True:
            peak["running"] = max(peak["running"], admission.running)
            peak["waiting"] = max(peak["waiting"], admission.waiting)
            await asyncio.sleep(0.01)

    sampler = asyncio.ensure_future(sample())
    try:
        return await work, peak
    finally:
        sampler.cancel()


async def test_tools_sandbox_concurrency_is_capped(sandbox):
    """24 sandboxes once ran together: now at most max_concurrent run, the rest queue and all finish.
    The bound is asserted on the code's own clock (CLOCK_MONOTONIC is the host's inside the
    sandbox: no time namespace), the use of every slot on the admission counters."""
    results, peak = await _peaks(sandbox.admission, asyncio.gather(
        *(sandbox.run("python", SLEEPER, {"i": i}, 60) for i in range(6))))
    assert sorted(r["i"] for r in results) == list(range(6))
    assert _most_at_once([(r["start"], r["end"]) for r in results]) <= LIMITS.max_concurrent
    assert peak == {"running": LIMITS.max_concurrent, "waiting": 6 - LIMITS.max_concurrent}


async def test_tools_sandbox_queue_wait_is_bounded():
    sb = Sandbox(Limits(cpu_s=4, wall_s=20.0, max_concurrent=1, queue_wait_s=0.3))
    holder = asyncio.ensure_future(sb.run("python", "import time\ndef main():\n    time.sleep(4)\n"
                                          "    return {'held': True}", {}, 20))
    while sb.admission.running == 0:  # noqa: ASYNC110 - polling a counter the sandbox owns
        await asyncio.sleep(0.02)
    with pytest.raises(SandboxBusy) as err:
        await sb.run("python", "def main():\n    return {}", {}, 20)
    assert err.value.code == "sandbox_busy"
    assert await holder == {"held": True}
    assert await sb.run("python", "def main():\n    return {'after': 1}", {}, 20) == {"after": 1}


@pytest.mark.integration
async def test_tools_sandbox_cap_through_the_executor(toolbox_factory, tenant):
    """The setting reaches the service's sandbox: a burst through the tool executor is capped."""
    box = toolbox_factory(sandbox_max_concurrent=2, sandbox_wall_s=20.0, sandbox_cpu_s=4)
    calls = [box.executor.invoke(Call(tenant, "code.python", {"code": SLEEPER, "inputs": {"i": i}}, run_id=f"r{i}",
                                      node_id="code", timeout_s=60)) for i in range(5)]
    outs, peak = await _peaks(box.sandbox.admission, asyncio.gather(*calls))
    assert all(o.ok for o in outs), [o.error_message for o in outs if not o.ok]
    assert _most_at_once([(o.result["start"], o.result["end"]) for o in outs]) <= 2
    assert peak["running"] == 2
