"""Pytest plugin (registered by entry point, so every test folder has it): real NATS and
Postgres+pgvector started once per test session on free ports, and a helper to run a
service as a real process.

Set `LOOM_TEST_NATS_URL` / `LOOM_TEST_DATABASE_URL` to run the tests against external
servers instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import httpx
import pytest

from loom_common import db, service_auth, tls
from loom_common.devstack import db_roles, infra
from loom_common.grpc_client import call_metadata
from loom_common.migrations import apply_migrations

# How long a test waits for something that must happen (a run recorded, a slot freed) before it
# fails: long, because it is not a speed check; a loaded 2-core box can take seconds for what a
# quiet one does in milliseconds. A check that holds returns at once.
PATIENCE_S = 60.0


async def eventually(check, what: str, timeout_s: float = PATIENCE_S, interval_s: float = 0.05):
    """Poll `check()` (sync or async) until it returns something truthy, and return that; fail the
    test naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(interval_s)


# One service-token secret for the test session and every service process it starts (they
# inherit the environment), so a test's gRPC calls carry tokens its services accept.
os.environ.setdefault(service_auth.SECRET_ENV, secrets.token_urlsafe(48))


@dataclass
class LoopTicks:
    count: int = 0


@contextlib.asynccontextmanager
async def loop_ticks(interval_s: float = 0.01) -> AsyncIterator[LoopTicks]:
    """Counts how often the event loop gets round to a short sleep while the block runs: work
    that blocks the loop lets it tick not at all, work moved off it leaves the count growing."""
    ticks = LoopTicks()

    async def tick() -> None:
        while True:
            await asyncio.sleep(interval_s)
            ticks.count += 1

    task = asyncio.ensure_future(tick())
    try:
        yield ticks
    finally:
        task.cancel()


def _state_root() -> Path:
    # Under /tmp, not /root: as root, embedded Postgres widens every parent's permissions.
    return Path(tempfile.mkdtemp(prefix="loom-test-"))


@pytest.fixture(scope="session")
def loom_state_dir() -> Iterator[Path]:
    path = _state_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_url(loom_state_dir: Path) -> Iterator[str]:
    external = os.environ.get("LOOM_TEST_NATS_URL")
    if external:
        yield external
        return
    server = infra.EmbeddedNats(loom_state_dir / "nats").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(loom_state_dir: Path) -> Iterator[str]:
    external = os.environ.get("LOOM_TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = infra.EmbeddedPostgres(loom_state_dir / "pg").start()
    try:
        yield server.url("loom_test")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def replicated_postgres() -> Iterator[tuple[infra.EmbeddedPostgres, infra.EmbeddedPostgres]]:
    """(primary, replica): a Postgres of the module's own and a hot standby streaming from it,
    made with pg_basebackup -R (loom_common.devstack.pg_replica), for the read/write split."""
    from loom_common.devstack import pg_replica

    root = _state_root()
    primary = infra.EmbeddedPostgres(root / "primary").start()
    replica = None
    try:
        pg_replica.allow_replication(primary)
        replica = pg_replica.start_replica(primary, root / "replica")
        yield primary, replica
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def service_role_passwords(loom_state_dir: Path) -> dict[str, str]:
    """The session's passwords of the services' database roles (devstack.db_roles): stable for
    the whole session, since roles are the cluster's and every test database shares them."""
    return db_roles.load_passwords(loom_state_dir / "secrets")


@contextlib.asynccontextmanager
async def migrated_pool(database_url: str, schema: str, migrations: str, **pool_kw) -> AsyncIterator:
    """A pool on a service's schema, the database made ready and migrated as the service itself
    does at start-up (for tests of a service's store without running the service)."""
    await db.ensure_database(database_url)
    await apply_migrations(database_url, schema, migrations)
    pool = await db.create_pool(database_url, schema=schema, **pool_kw)
    try:
        yield pool
    finally:
        await pool.close()


# Services whose HTTP port is public: their /readyz and /metrics are on an internal admin port.
PUBLIC_HTTP_SERVICES = frozenset({"gateway"})


class ServiceProcess:
    """A Loom service run as its own process (its console script), stopped with SIGTERM."""

    def __init__(self, name: str, env: dict[str, str], http_port: int, log_path: Path,
                 admin_port: int | None = None, ca_file: Path | None = None):
        self.name, self.env, self.http_port, self.log_path = name, env, http_port, log_path
        self.admin_port = admin_port or http_port  # where /readyz and /metrics are
        self.ca_file = ca_file  # what its certificate chains to, if not its LOOM_TLS_CA_FILE
        self.proc: subprocess.Popen | None = None

    @property
    def scheme(self) -> str:
        """https when the process was given a certificate (loom_common.tls)."""
        return "https" if self.env.get("LOOM_TLS_CERT_FILE") else "http"

    @property
    def verify(self):
        """httpx's `verify=` for this process: its CA when it serves TLS."""
        ca = self.ca_file or self.env.get("LOOM_TLS_CA_FILE")
        return tls.client_context(Path(ca)) if ca else True

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def admin_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.admin_port}"

    def start(self, timeout_s: float = 60.0) -> ServiceProcess:
        exe = Path(sys.executable).parent / f"loom-{self.name}"
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([str(exe)], env={**os.environ, **self.env}, stdout=log,
                                     stderr=subprocess.STDOUT)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise infra.GaveUp(f"loom-{self.name} exited {self.proc.returncode}:\n{self.log()}")
            return httpx.get(self.admin_url + "/readyz", timeout=2.0, verify=self.verify).status_code == 200

        infra.wait_until(ready, timeout_s, f"loom-{self.name}", interval_s=0.2)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self, timeout_s: float = 30.0) -> int | None:
        return infra.stop_process(self.proc, signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def run_service(nats_url: str, database_url: str, tmp_path: Path) -> Iterator:
    """`run_service("rag", http_port=..., extra_env)` -> a started ServiceProcess."""
    started: list[ServiceProcess] = []

    def start(name: str, *, env: dict[str, str] | None = None, http_port: int | None = None,
              timeout_s: float = 60.0) -> ServiceProcess:
        port = http_port or infra.free_port()
        prefix = f"LOOM_{name.upper()}_"
        full_env = {"LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url,
                    f"{prefix}HTTP_PORT": str(port), "LOOM_HOME": str(tmp_path / "home"),
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        admin_port = None
        if name in PUBLIC_HTTP_SERVICES:
            admin_port = int(full_env.setdefault(f"{prefix}ADMIN_PORT", str(infra.free_port())))
        proc = ServiceProcess(name, full_env, port, tmp_path / f"{name}-{len(started)}.log", admin_port)
        started.append(proc)
        return proc.start(timeout_s)

    yield start
    for proc in reversed(started):
        proc.stop()


def _signed_for_body_tenant(details, request):
    """Call details with a service token for the request's own tenant_id, unless they carry one."""
    metadata = list(details.metadata or ())
    if not any(key == "authorization" for key, _ in metadata):
        metadata += call_metadata(tenant_id=getattr(request, "tenant_id", "") or None)
    return details._replace(metadata=grpc.aio.Metadata(*metadata))


# grpc.aio files an interceptor under the first kind it is an instance of: one class per kind.
class _SignUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(_signed_for_body_tenant(details, request), request)


class _SignUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(_signed_for_body_tenant(details, request), request)


def service_channel(addr: str) -> grpc.aio.Channel:
    """A test's channel to a Loom service, acting as a trusted Loom service would: each call is
    signed for the tenant its request names (tests of the refusals build their own metadata);
    TLS verified against LOOM_TLS_CA_FILE when that is set, as the services' own channels."""
    credentials = tls.grpc_channel_credentials()
    if credentials is not None:
        return grpc.aio.secure_channel(addr, credentials, interceptors=[_SignUnaryUnary(), _SignUnaryStream()])
    return grpc.aio.insecure_channel(addr, interceptors=[_SignUnaryUnary(), _SignUnaryStream()])


def write_header_only_gguf(path: str | Path, kv: dict[str, str | int], padding: int = 0) -> None:
    """A GGUF with metadata and no tensors (string and u32 values), then `padding` bytes: a
    model file the engine can register, pull and describe without loading weights. Here, not
    in loom_inference, because tests of other services serve it too (services never import
    each other)."""
    with open(path, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)))
        for k, v in kv.items():
            kb = k.encode()
            f.write(struct.pack("<Q", len(kb)) + kb)
            if isinstance(v, int):
                f.write(struct.pack("<II", 4, v))  # 4: GGUF's uint32 type
            else:
                vb = v.encode()
                f.write(struct.pack("<IQ", 8, len(vb)) + vb)  # 8: GGUF's string type
        f.write(b"\0" * padding)


class ModelServer:
    """A loopback model source for tests of the engine and of the console's pull (no test leaves
    the machine). Serves one tiny GGUF as an Ollama-style registry (/v2/...), as a plain file (/files/)
    with Range support, as a file whose first download breaks half-way (/flaky/), and
    redirects anywhere (/redirect?to=URL)."""

    MODEL = "tiny"

    def __init__(self, root: Path, size_mib: int = 3) -> None:
        # A few MiB: the engine reads 1 MiB at a time, so a pull reports several progress steps.
        self.blob_path = root / "tiny.gguf"
        write_header_only_gguf(self.blob_path, {"general.architecture": "gemma3", "general.file_type": 15,
                                                "general.size_label": "1M"}, padding=size_mib << 20)
        self.blob = self.blob_path.read_bytes()
        self.digest = hashlib.sha256(self.blob).hexdigest()
        self.flaky_served = 0
        self.ranges: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send_blob(self, cut: int | None = None):
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    server.ranges.append(rng)
                    start = int(rng.split("=")[1].split("-")[0])
                body = server.blob[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Checksum-Sha256", server.digest)
                self.end_headers()
                self.wfile.write(body if cut is None else body[:cut])

            def do_GET(self):
                if self.path.endswith("/manifests/latest") and "/tiny/" in self.path:
                    data = json.dumps({"schemaVersion": 2, "layers": [
                        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{server.digest}",
                         "size": len(server.blob)}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif "/blobs/sha256:" in self.path or self.path.startswith("/files/"):
                    self._send_blob()
                elif self.path.startswith("/redirect?to="):
                    self.send_response(302)
                    self.send_header("Location", self.path.split("=", 1)[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path.startswith("/flaky/"):
                    server.flaky_served += 1
                    self._send_blob(cut=len(server.blob) // 2 if server.flaky_served == 1 else None)
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.port = infra.free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()


Script = Callable[[dict], tuple[list[dict], str]]


class ScriptedChat:
    """The scripted backend of tests: an OpenAI-compatible chat endpoint on loopback. It is not
    a model: `script(body)` decides each reply as the assistant's deltas and a finish reason
    (`([{"content": "hi"}], "stop")`, or a delta with `tool_calls` and "tool_calls"); they are
    streamed as SSE chunks, or answered as one message when the request does not stream. Every
    request body is kept in `requests`, so a test asserts what reached the prompt."""

    def __init__(self, script: Script, model: str = "scripted") -> None:
        self.requests: list[dict] = []
        chat = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):  # /v1/models
                self._json({"object": "list", "data": [{"id": model, "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                chat.requests.append(body)
                deltas, finish = script(body)
                usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                if not body.get("stream"):
                    message = {"role": "assistant", "content": "".join(d.get("content") or "" for d in deltas)}
                    calls = [c for d in deltas for c in d.get("tool_calls") or []]
                    if calls:
                        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
                    self._json({"id": "x", "object": "chat.completion", "model": model, "usage": usage,
                                "choices": [{"index": 0, "message": message, "finish_reason": finish}]})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for delta, end in [({"role": "assistant", **d}, None) for d in deltas] + [({}, finish)]:
                    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": end}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())

            def _json(self, obj):
                raw = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.port = infra.free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()


def tls_handshake(port: int, ca: Path, *, max_version: ssl.TLSVersion | None = None,
                  min_version: ssl.TLSVersion | None = None,
                  server_hostname: str = "127.0.0.1") -> tuple[str, str | None]:
    """A real TLS handshake with a loopback port, offering h2 and http/1.1: (the version agreed,
    the ALPN protocol chosen), or ("refused", why)."""
    from loom_common.tls import client_context

    ctx = client_context(ca)
    if max_version:
        ctx.maximum_version = max_version
    if min_version:
        ctx.minimum_version = min_version
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=server_hostname) as conn:
            return conn.version() or "", conn.selected_alpn_protocol()
    except (ssl.SSLError, ConnectionResetError) as exc:
        return "refused", getattr(exc, "reason", None) or type(exc).__name__
