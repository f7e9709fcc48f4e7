"""The code sandbox contains what user code tries: network, /etc/shadow, a fork bomb, a memory
bomb, an infinite loop, an output flood. Each comes back as a typed refusal, quickly."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from loom_tools.domain.types import Call
from loom_tools.errors import SandboxUnavailable
from loom_tools.sandbox import runner as sandbox_runner
from loom_tools.sandbox.runner import Limits, Sandbox

# The CPU limit must fire before the wall-clock one for a busy loop even on a box so loaded that the
# loop gets a few percent of a core: 1 s of CPU inside 30 s of wall time. A test that wants the wall
# limit (a sleeper) asks for a short timeout of its own instead.
LIMITS = Limits(cpu_s=1, memory_mb=256, wall_s=30.0, max_processes=16, max_output_bytes=64 * 1024)
SHORT_TIMEOUT_S = 3.0
# The typed code says which limit stopped it; the time only guards against a hang. A loaded box adds
# seconds to a sandbox's start (bwrap, an interpreter), so no tighter wall-clock bound than this.
HANG_S = LIMITS.wall_s + 30


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    sb = Sandbox(LIMITS)
    if not sb.isolated:
        pytest.fail(f"bubblewrap is not usable here: the sandbox would run degraded ({sb.layers})")
    return sb


async def run(sb: Sandbox, code: str, inputs=None, language="python", timeout_s: float = LIMITS.wall_s):
    started = time.perf_counter()
    try:
        return await sb.run(language, code, inputs or {}, timeout_s), time.perf_counter() - started
    except Exception as exc:
        return exc, time.perf_counter() - started


async def test_tools_sandbox_runs_main_with_inputs(sandbox):
    out, _ = await run(sandbox, "import math\ndef main(x, y):\n    print('log line')\n"
                                "    return {'hyp': math.hypot(x, y)}", {"x": 3, "y": 4})
    assert out == {"hyp": 5.0}


@pytest.mark.parametrize(("name", "code", "expect"), [
    ("network", "import socket\ndef main():\n    socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
                "    return {}", "code_error"),
    ("dns", "import socket\ndef main():\n    return {'a': socket.gethostbyname('example.com')}", "code_error"),
    ("shadow", "def main():\n    return {'s': open('/etc/shadow').read()}", "code_error"),
    ("service files", "import os\ndef main():\n    return {'ls': os.listdir('/work')}", "code_error"),
    ("fork bomb", "import os\ndef main():\n    while True:\n        os.fork()", "sandbox_limit"),
    ("memory bomb", "def main():\n    a = []\n    while True:\n        a.append(bytearray(10 ** 7))",
     "sandbox_limit"),
    ("infinite loop", "def main():\n    while True:\n        pass", "sandbox_limit"),
    ("sleeping forever", "import time\ndef main():\n    time.sleep(60)", "timeout"),
    ("output flood", "def main():\n    while True:\n        print('x' * 10000)", "sandbox_limit"),
    ("no main", "x = 1", "code_error"),
    ("not a dict", "def main():\n    return [1]", "code_error"),
])
async def test_tools_sandbox_contains(sandbox, name, code, expect):
    out, took = await run(sandbox, code, timeout_s=SHORT_TIMEOUT_S if expect == "timeout" else LIMITS.wall_s)
    assert getattr(out, "code", None) == expect, (name, out)
    assert took < HANG_S, (name, took)


async def test_tools_sandbox_sees_only_its_scratch(sandbox):
    out, _ = await run(sandbox, "import os\ndef main():\n    open('note.txt', 'w').write('hi')\n"
                                "    return {'root': sorted(os.listdir('/')), 'cwd': os.getcwd(), 'uid': os.getuid(),"
                                " 'etc': os.path.exists('/etc'), 'home': os.path.exists('/root')}")
    assert out["cwd"] == "/scratch" and out["uid"] != 0 and not out["etc"] and not out["home"]
    assert set(out["root"]) <= {"usr", "bin", "lib", "lib64", "lib32", "sbin", "proc", "dev", "tmp", "scratch",
                                "sandbox"}
    # Writes outside the scratch folder fail: /usr is read-only.
    err, _ = await run(sandbox, "def main():\n    open('/usr/evil', 'w')\n    return {}")
    assert err.code == "code_error" and "Read-only" in err.message


async def test_tools_sandbox_javascript(sandbox):
    if sandbox.node is None:
        pytest.skip("node is not installed")
    out, _ = await run(sandbox, "function main(inputs) { return {sum: inputs.a + inputs.b}; }", {"a": 1, "b": 2},
                       "javascript")
    assert out == {"sum": 3}
    loop, took = await run(sandbox, "function main() { while (true) {} }", language="javascript")
    assert loop.code == "sandbox_limit" and took < HANG_S
    net, _ = await run(sandbox, "async function main() { await fetch('http://1.1.1.1/'); return {}; }",
                       language="javascript")
    assert net.code == "code_error"


async def test_tools_sandbox_refuses_when_degraded_unless_allowed(monkeypatch):
    monkeypatch.setattr(sandbox_runner, "find_bwrap", lambda: None)
    strict = Sandbox(LIMITS)
    assert strict.layers["namespaces"] is False
    with pytest.raises(SandboxUnavailable):
        await strict.run("python", "def main():\n    return {}", {}, 5)
    loose = Sandbox(LIMITS, allow_degraded=True)
    assert await loose.run("python", "def main():\n    return {'ok': 1}", {}, 5) == {"ok": 1}
    out, _ = await run(loose, "def main():\n    while True:\n        pass")
    assert out.code == "sandbox_limit"


@pytest.mark.integration
async def test_tools_code_python_through_the_executor(toolbox_factory, tenant):
    ex = toolbox_factory().executor
    out = await ex.invoke(Call(tenant, "code.python", {"code": "def main(n):\n    return {'sq': n * n}",
                                                       "inputs": {"n": 7}}, run_id="r1", node_id="code1"))
    assert out.ok and out.result == {"sq": 49}
    bad = await ex.invoke(Call(tenant, "code.python", {"inputs": {}}))
    assert bad.error_code == "invalid_arguments" and bad.error_field == "code"


async def test_tools_sandbox_runs_side_by_side(sandbox):
    """Each run has its own uid and scratch: concurrent runs neither collide nor share a
    process budget (one fork bomb does not starve its neighbours)."""
    import asyncio

    codes = ["import os\ndef main(i):\n    open('f', 'w').write(str(i))\n    return {'i': int(open('f').read()),"
             " 'files': os.listdir('.')}"] * 4
    bomb = "import os\ndef main(i):\n    while True:\n        os.fork()"
    results = await asyncio.gather(*(sandbox.run("python", c, {"i": i}, LIMITS.wall_s) for i, c in enumerate(codes)),
                                   sandbox.run("python", bomb, {"i": 9}, LIMITS.wall_s), return_exceptions=True)
    assert results[:4] == [{"i": i, "files": ["f"]} for i in range(4)]
    assert getattr(results[4], "code", None) == "sandbox_limit"


def _processes_of(uids: set[int]) -> list[str]:
    """Every process (zombies included) whose real uid is one of `uids`, as 'pid state'."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            if int(fields["Uid"].split()[0]) in uids:
                found.append(f"{status.parent.name} {fields['State'].strip()}")
    return found


async def test_tools_sandbox_leaves_no_process_behind(sandbox, monkeypatch):
    """A finished run (and a probe) leaves nothing under its uid, not even a zombie waiting for
    the host's pid 1 to reap it: such zombies count against RLIMIT_NPROC, and a fresh-clone run
    once saw fourteen of them under the probe's uid refuse the next sandbox ("Can't fork")."""
    if not sandbox.as_root:
        pytest.skip("runs switch to throwaway uids only when the service runs as root")
    used: set[int] = set()
    take = sandbox_runner._throwaway_uid

    def recorded() -> int:
        used.add(uid := take())
        return uid

    monkeypatch.setattr(sandbox_runner, "_throwaway_uid", recorded)
    for _ in range(LIMITS.max_processes + 2):  # more than one uid's process budget
        assert sandbox._probe()
    assert await sandbox.run("python", "def main():\n    return {'ok': 1}", {}, LIMITS.wall_s) == {"ok": 1}
    bomb, _ = await run(sandbox, "import os\ndef main():\n    while True:\n        os.fork()")
    assert getattr(bomb, "code", None) == "sandbox_limit"
    assert len(used) == LIMITS.max_processes + 4
    assert _processes_of(used) == []


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_child_that_exits_before_reading_its_request_is_a_verdict_not_a_crash(loop: str) -> None:
    """The pipe to the child can close before the request is written (the child died at once).
    asyncio says BrokenPipeError; uvloop, which the service runs on, says RuntimeError("...the
    handler is closed"). Either way the run ends with a verdict on the child's exit."""
    import asyncio
    import sys

    import uvloop

    from loom_tools.errors import CodeError

    async def scenario() -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import os; os._exit(3)", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        await proc.wait()  # gone before its request is fed
        try:
            await Sandbox(LIMITS, allow_degraded=True)._collect(proc, b"x" * (1 << 20), 5.0)
        except CodeError as exc:
            return str(exc)
        return "no error"

    verdict = uvloop.run(scenario()) if loop == "uvloop" else asyncio.run(scenario())
    assert "exited with status 3" in verdict
