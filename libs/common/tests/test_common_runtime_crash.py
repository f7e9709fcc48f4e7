"""A service killed by a crash in native code leaves its Python stack in its log."""

from __future__ import annotations

import signal
import subprocess
import sys

SCRIPT = """
import ctypes
from loom_common.runtime import ServiceRuntime
from loom_common.settings import ServiceSettings

async def crash_in_native_code():
    ctypes.string_at(0)  # reads address 0: SIGSEGV, as a fault in llama.cpp or grpc would

rt = ServiceRuntime("crashy", ServiceSettings(event_loop="asyncio"))
rt.serve = crash_in_native_code
rt.run()
"""


def test_a_native_crash_writes_the_python_stack_to_the_service_log() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in proc.stderr
    assert "crash_in_native_code" in proc.stderr  # the frame that crashed, named
