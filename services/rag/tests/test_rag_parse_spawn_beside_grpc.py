"""A parser child forked while other tasks are inside gRPC calls survives (loom_rag.main turns
gRPC's fork support off). Before, under uvloop, about one spawn in twenty died of SIGSEGV
between fork and exec, and two files uploaded at once often left one in `error` as
"needed more than 1024 MiB of memory (or crashed)". Run in a fresh interpreter: the setting
must come before gRPC initialises, as it does in `loom-rag`."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # ~20 s: sixty parser children

SCRIPT = r'''
import loom_rag.main  # noqa: F401  (sets GRPC_ENABLE_FORK_SUPPORT before grpc is imported)
import asyncio, grpc, uvloop
from grpc import aio
from loom_rag.ingest.isolated import ParseLimits, parse_isolated

async def main():
    async def echo(req, ctx):
        await asyncio.sleep(0.02)
        return req
    server = aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "t.S", {"M": grpc.unary_unary_rpc_method_handler(echo)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    call = aio.insecure_channel(f"127.0.0.1:{port}").unary_unary("/t.S/M")
    busy = True
    async def hammer():
        while busy:
            await call(b"x")
    tasks = [asyncio.create_task(hammer()) for _ in range(8)]
    failed = 0
    for _ in range(30):
        results = await asyncio.gather(*[parse_isolated(b"# Orchard\n\nApples.", "orchard.md", "text/markdown",
                                                        ParseLimits()) for _ in range(2)], return_exceptions=True)
        failed += sum(isinstance(r, Exception) for r in results)
    busy = False
    await asyncio.gather(*tasks)
    print("failed", failed)

uvloop.run(main())
'''


def test_parser_children_forked_beside_busy_grpc_calls_all_parse() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "failed 0", out.stdout + out.stderr[-2000:]
