"""`make up` / `make down` for real: supervisord runs NATS, Postgres, the five services and the
web console (when it is built); every /readyz answers 200; `down` leaves no process behind.

Runs a second stack beside any running one: its own state folder and a port offset.
"""

from __future__ import annotations

import os
import random
import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from loom_common.devstack import ports, stack
from loom_common.testing import tls_handshake
from loom_common.tls import client_context

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE_PORTS = {"inference": 11434, "tools": 8083, "rag": 8082, "orchestrator": 8081, "gateway": 9080}  # /readyz
GATEWAY_PUBLIC = 8080
CONSOLE_PORT = 3000


def _stack(root: Path, offset: int, *args: str, tls: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOOM_ROOT": str(root), "LOOM_STACK_PORT_OFFSET": str(offset), "LOOM_TLS": "1" if tls else ""}
    for var in ("LOOM_NATS_URL", "LOOM_DATABASE_URL", "LOOM_SERVICE_TOKEN_SECRET"):  # as `make up` runs
        env.pop(var, None)
    exe = Path(sys.executable).parent / "loom-stack"
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=300)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_offset() -> int:
    """A port offset at which every port of the stack is free right now: a blind random one can
    land on a port that something else on this machine listens on."""
    base = [p - ports.OFFSET for p in (ports.NATS, ports.NATS_MONITOR, ports.POSTGRES, ports.CONSOLE)]
    base += [p - ports.OFFSET for sp in ports.SERVICES for p in (sp.http, sp.grpc, sp.admin) if p]
    for _ in range(100):
        offset = random.randrange(1000, 15000, 10)
        if all(_bindable(port + offset) for port in base):
            return offset
    pytest.fail("no port offset leaves every port of the stack free")


def test_stack_up_all_ready_then_down_leaves_nothing(tmp_path: Path) -> None:
    offset = _free_offset()
    started = time.monotonic()
    with_console = stack.console_command(stack.StackPaths(tmp_path)) is not None  # built by make setup
    up = _stack(tmp_path, offset, "up", "--timeout", "180")
    elapsed = time.monotonic() - started
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"stack ready in {elapsed:.1f}s")
        for name, port in {**BASE_PORTS, **({"console": CONSOLE_PORT} if with_console else {})}.items():
            r = httpx.get(f"http://127.0.0.1:{port + offset}/readyz", timeout=5)
            assert r.status_code == 200, (name, r.text)
        if with_console:
            assert f"http://127.0.0.1:{CONSOLE_PORT + offset}" in up.stdout
            # The console proxies the gateway same-origin.
            r = httpx.get(f"http://127.0.0.1:{CONSOLE_PORT + offset}/console/api/setup", timeout=5)
            assert r.status_code == 200 and r.json()["step"] == "not_started", r.text
        # The gateway's public port serves the API, not the admin routes.
        assert httpx.get(f"http://127.0.0.1:{GATEWAY_PUBLIC + offset}/metrics", timeout=5).status_code == 404
        _internal_credentials_in_use(tmp_path / ".loom", offset)
        status = _stack(tmp_path, offset, "status").stdout
        pids = [int(p) for p in re.findall(r"pid (\d+)", status)]
        assert len(pids) == 7 + with_console, status  # nats, postgres, five services (+ the console)
        supervisord = int((tmp_path / ".loom" / "supervisord.pid").read_text())
        children = {p.pid for p in psutil.Process(supervisord).children(recursive=True)}
    finally:
        down = _stack(tmp_path, offset, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    time.sleep(0.5)
    alive = [pid for pid in [supervisord, *pids, *children] if psutil.pid_exists(pid)
             and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left behind: {alive}"


def _internal_credentials_in_use(state: Path, offset: int) -> None:
    """Generated with no user step (mode 0600), and each service logged in as itself."""
    import asyncio

    import asyncpg

    secrets = state / "secrets"
    for name in ("postgres-superuser", "postgres-gateway", "nats-gateway", "service-token"):
        assert (secrets / name).stat().st_mode & 0o777 == 0o600, name
    assert (state / "supervisord.conf").stat().st_mode & 0o777 == 0o600

    async def logins() -> set[str]:
        password = (secrets / "postgres-superuser").read_text().strip()
        conn = await asyncpg.connect(f"postgresql://postgres:{password}@127.0.0.1:{5432 + offset}/loom?sslmode=disable")
        try:
            rows = await conn.fetch("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = 'loom' "
                                    "AND pid <> pg_backend_pid()")
            return {r["usename"] for r in rows}
        finally:
            await conn.close()

    assert {"loom_gateway", "loom_orchestrator", "loom_rag", "loom_inference", "loom_tools"} <= asyncio.run(logins())


def test_stack_up_with_tls_serves_every_port_encrypted(tmp_path: Path) -> None:
    """`LOOM_TLS=1 make up`: a local CA and a certificate per process (keys 0600), every HTTP port
    on TLS 1.3 (a TLS 1.2-only client refused), the gateway on Granian (h2), the console proxying
    to the gateway over verified TLS, every service ready (their gRPC hops verified against the CA),
    NATS on TLS 1.3 only (the embedded Postgres has no TLS build: loopback only)."""
    offset = _free_offset()
    with_console = stack.console_command(stack.StackPaths(tmp_path)) is not None
    up = _stack(tmp_path, offset, "up", "--timeout", "180", tls=True)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        tls_dir = tmp_path / ".loom" / "tls"
        ca = tls_dir / "ca.pem"
        assert tls_dir.stat().st_mode & 0o777 == 0o700
        for key in tls_dir.glob("*-key.pem"):
            assert key.stat().st_mode & 0o777 == 0o600, key.name
        verify = client_context(ca)
        for name, port in {**BASE_PORTS, **({"console": CONSOLE_PORT} if with_console else {})}.items():
            r = httpx.get(f"https://127.0.0.1:{port + offset}/readyz", timeout=5, verify=verify)
            assert r.status_code == 200, (name, r.text)
        public = {"gateway": GATEWAY_PUBLIC, "model API": BASE_PORTS["inference"],
                  **({"console": CONSOLE_PORT} if with_console else {})}
        for name, port in public.items():  # the gateway on Granian: HTTP/2 over TLS
            assert tls_handshake(port + offset, ca, max_version=ssl.TLSVersion.TLSv1_3, server_hostname="localhost") \
                == ("TLSv1.3", "h2" if name == "gateway" else "http/1.1"), name
            assert tls_handshake(port + offset, ca, max_version=ssl.TLSVersion.TLSv1_2,
                                 server_hostname="localhost")[0] == "refused", name
        with pytest.raises(httpx.HTTPError):  # plaintext gets nothing
            httpx.get(f"http://127.0.0.1:{GATEWAY_PUBLIC + offset}/v1/parameters", timeout=5)
        if with_console:
            assert f"https://127.0.0.1:{CONSOLE_PORT + offset}" in up.stdout
            r = httpx.get(f"https://127.0.0.1:{CONSOLE_PORT + offset}/console/api/setup", timeout=5, verify=verify)
            assert r.status_code == 200 and r.json()["step"] == "not_started", r.text
        _nats_on_tls(tmp_path / ".loom", offset, ca)
        # Idempotent: a second `up` of the running stack keeps the CA as it is.
        before = ca.read_bytes()
        assert _stack(tmp_path, offset, "up", "--timeout", "60", tls=True).returncode == 0
        assert ca.read_bytes() == before
    finally:
        down = _stack(tmp_path, offset, "down")
    assert down.returncode == 0, down.stdout + down.stderr


def _nats_on_tls(state: Path, offset: int, ca: Path) -> None:
    """NATS takes TLS 1.3 clients only (every service connected through it to be ready)."""
    import asyncio

    import nats

    async def check() -> None:
        nats_port = 4222 + offset
        refused, _ = tls_handshake(nats_port, ca, max_version=ssl.TLSVersion.TLSv1_2, server_hostname="localhost")
        assert refused == "refused"
        password = (state / "secrets" / "nats-admin").read_text().strip()
        nc = await nats.connect(f"tls://admin:{password}@127.0.0.1:{nats_port}", tls=client_context(ca),
                                allow_reconnect=False, connect_timeout=10)
        assert nc.is_connected
        await nc.close()
        with pytest.raises(Exception):  # noqa: B017 - plaintext: nats-py refuses a server requiring TLS
            await nats.connect(f"nats://admin:{password}@127.0.0.1:{nats_port}", allow_reconnect=False,
                               connect_timeout=5, max_reconnect_attempts=0)

    asyncio.run(check())
