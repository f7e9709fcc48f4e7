"""services/console/server.mjs on its own (Node, no stack): static files with the SPA fallback,
no path out of dist/, and the same-origin proxy to the gateway: bodies and headers through,
Server-Sent Events passed on as they come (not buffered), a clear 502 when the gateway is down."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loom_common.devstack import infra

SERVER = Path(__file__).resolve().parents[2] / "services" / "console" / "server.mjs"


class FakeGateway(http.server.BaseHTTPRequestHandler):
    """Answers like the gateway: JSON echoing the request, or an SSE stream held mid-way."""

    release = threading.Event()  # the SSE stream's second event waits for the test

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path.endswith("/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b'data: {"event": "first"}\n\n')
            self.wfile.flush()
            self.release.wait(30)
            self.wfile.write(b'data: {"event": "second"}\n\n')
            self.wfile.flush()
            return
        payload = f'{{"path": "{self.path}", "auth": "{self.headers.get("Authorization")}", "body": {body.decode()}}}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload.encode())


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    FakeGateway.release.set()
    server.shutdown()


def _serve(dist: Path, gateway_url: str) -> tuple[subprocess.Popen, str]:
    port = infra.free_port()
    env = {**os.environ, "LOOM_CONSOLE_PORT": str(port), "LOOM_CONSOLE_DIST": str(dist),
           "LOOM_GATEWAY_URL": gateway_url}
    proc = subprocess.Popen(["node", str(SERVER)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    infra.wait_until(up, 20, "server.mjs")
    return proc, url


@pytest.fixture(scope="module")
def console(tmp_path_factory, gateway: str) -> Iterator[str]:
    if not shutil.which("node"):
        pytest.fail("Node 20 is needed for the console")
    dist = tmp_path_factory.mktemp("dist")
    (dist / "index.html").write_text("<!doctype html><title>Loom console</title>")
    (dist / "assets").mkdir()
    (dist / "assets" / "index-abc.js").write_text("console.log(1)")
    (dist.parent / "secret.txt").write_text("outside dist")
    proc, url = _serve(dist, gateway)
    yield url
    proc.terminate()
    proc.wait(10)


def test_static_files_and_the_spa_fallback(console: str) -> None:
    asset = httpx.get(console + "/assets/index-abc.js")
    assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
    assert "immutable" in asset.headers["cache-control"]
    for path in ("/", "/w/ws1/apps/app1/logs", "/login?next=x"):
        page = httpx.get(console + path)
        assert page.status_code == 200 and "Loom console" in page.text, path
        assert page.headers["cache-control"] == "no-cache"
    assert httpx.get(console + "/assets/missing.js").status_code == 404  # no HTML for a missing script
    assert httpx.get(console + "/readyz").status_code == 200
    assert httpx.post(console + "/somewhere").status_code == 405


def test_no_path_leaves_dist(console: str) -> None:
    for path in ("/../secret.txt", "/..%2fsecret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt", "/%ZZ"):
        r = httpx.get(console + path)
        assert "outside dist" not in r.text, path


def test_api_calls_pass_through_with_their_headers_and_body(console: str) -> None:
    r = httpx.post(console + "/console/api/workspaces/w/apps?x=1", json={"name": "a"},
                   headers={"Authorization": "Bearer t0k"})
    assert r.status_code == 201
    assert r.json() == {"path": "/console/api/workspaces/w/apps?x=1", "auth": "Bearer t0k", "body": {"name": "a"}}


def test_server_sent_events_are_not_buffered(console: str) -> None:
    FakeGateway.release.clear()
    with httpx.stream("POST", console + "/v1/chat-messages/stream", json={}, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        lines = r.iter_lines()
        # The first event arrives while the gateway still holds the second one back.
        assert next(line for line in lines if line) == 'data: {"event": "first"}'
        FakeGateway.release.set()
        assert next(line for line in lines if line) == 'data: {"event": "second"}'


def test_a_down_gateway_is_a_clear_502(tmp_path) -> None:
    (tmp_path / "index.html").write_text("x")
    proc, url = _serve(tmp_path, f"http://127.0.0.1:{infra.free_port()}")
    try:
        r = httpx.get(url + "/console/api/setup")
        assert r.status_code == 502
        assert r.json()["code"] == "bad_gateway" and "unreachable" in r.json()["message"]
    finally:
        proc.terminate()
        proc.wait(10)


class KeepAliveGateway(http.server.BaseHTTPRequestHandler):
    """A gateway that keeps connections open (HTTP/1.1, as uvicorn does) and notes each
    request's connection, by the proxy's source port."""

    protocol_version = "HTTP/1.1"
    ports: list[int] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.ports.append(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def test_each_proxied_request_gets_a_connection_of_its_own(tmp_path) -> None:
    """No request rides on a pooled idle connection: one the gateway closes as its keep-alive
    runs out (uvicorn: 5 s idle, Node's pool: 5 s) would fail with ECONNRESET, a 502 that the
    editor shows as "Not saved"."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveGateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "index.html").write_text("x")
    proc, url = _serve(tmp_path, f"http://127.0.0.1:{server.server_address[1]}")
    try:
        for _ in range(3):
            assert httpx.get(url + "/console/api/workspaces").status_code == 200
        assert len(KeepAliveGateway.ports) == 3 and len(set(KeepAliveGateway.ports)) == 3
    finally:
        proc.terminate()
        proc.wait(10)
        server.shutdown()
