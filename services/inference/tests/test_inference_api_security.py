"""The model API on 11434 under attack (issue 18, point 3), against the real service process.

DNS rebinding (a foreign Host or Origin) is refused; tokens guard the API and, separately, the
mutating routes; a bind off loopback without a token refuses to start; /api/pull reads only
regular files inside the operator's pull folder, reaches no loopback/private address (nor
through a redirect), and imports only catalog model packages."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest

from loom_common.devstack import infra
from loom_common.testing import ServiceProcess
from loom_inference.api.access import AccessPolicy
from loom_inference.store import ModelStore

pytestmark = pytest.mark.integration

API_TOKEN, ADMIN_TOKEN = "api-token-for-tests", "admin-token-for-tests"


class Victim:
    """An internal loopback service /api/pull must never reach; counts every request."""

    def __init__(self) -> None:
        self.hits = 0
        victim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                victim.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.port = infra.free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def victim() -> Iterator[Victim]:
    v = Victim()
    yield v
    v.httpd.shutdown()


@pytest.fixture(scope="module")
def guarded_service(nats_url, database_url, model_server, tmp_path_factory) -> Iterator[ServiceProcess]:
    """A second real inference process with both tokens and a pull folder (no model loading:
    the checks here come before any model)."""
    home = tmp_path_factory.mktemp("guarded-home")
    pull_dir = tmp_path_factory.mktemp("pull-dir")
    http_port, grpc_port = infra.free_port(), infra.free_port()
    env = {"LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(home),
           "LOOM_INFERENCE_HTTP_PORT": str(http_port), "LOOM_INFERENCE_GRPC_PORT": str(grpc_port),
           "LOOM_INFERENCE_REGISTRY_URL": model_server.url, "LOOM_INFERENCE_LOAD_MODELS_AT_START": "false",
           "LOOM_INFERENCE_API_TOKEN": API_TOKEN, "LOOM_INFERENCE_ADMIN_TOKEN": ADMIN_TOKEN,
           "LOOM_INFERENCE_PULL_DIR": str(pull_dir), "LOOM_INFERENCE_ALLOWED_HOSTS": "llm.lan, models.internal",
           "PYTHONUNBUFFERED": "1"}
    proc = ServiceProcess("inference", env, http_port, home / "inference.log").start(120)
    proc.home, proc.pull_dir = home, pull_dir  # type: ignore[attr-defined]
    yield proc
    proc.stop()


def _pull(base: str, model: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(base + "/api/pull", json={"model": model, "stream": False}, headers=headers, timeout=60)


def test_inference_api_refuses_foreign_host_and_origin(inference_service) -> None:
    """DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 sends its own Host/Origin."""
    base = inference_service.base_url
    for path in ("/api/tags", "/v1/models", "/api/version", "/"):
        r = httpx.get(base + path, headers={"Host": "evil.example"})
        assert r.status_code == 403, (path, r.text)
        assert "evil.example" in r.text
    r = httpx.post(base + "/api/pull", json={"model": "tiny"}, headers={"Host": "evil.example:11434"})
    assert r.status_code == 403
    r = httpx.get(base + "/api/tags", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "Origin" in r.json()["error"]
    for host in ("localhost", f"localhost:{inference_service.http_port}", "127.0.0.1", "[::1]:11434", "app.localhost"):
        assert httpx.get(base + "/api/tags", headers={"Host": host}).status_code == 200, host
    assert httpx.get(base + "/api/tags", headers={"Origin": "http://localhost:3000"}).status_code == 200
    # health stays reachable by probes whatever their Host
    assert httpx.get(base + "/healthz", headers={"Host": "10.0.0.7:11434"}).status_code == 200


def test_inference_api_pull_refuses_local_paths_without_a_pull_folder(inference_service) -> None:
    """/etc/hostname was copied into the store; a missing path answered differently."""
    base = inference_service.base_url
    answers = {path: _pull(base, path) for path in ("/etc/hostname", "/nonexistent/x.gguf", "./tiny.gguf",
                                                     "~/.ssh/id_rsa")}
    for path, r in answers.items():
        assert r.status_code == 400, (path, r.text)
        assert r.json()["field"] == "model"
    assert len({r.text for r in answers.values()}) == 1  # no oracle on what exists
    names = {m.source for m in ModelStore(inference_service.home / "models").list()}
    assert "/etc/hostname" not in names


def test_inference_api_pull_refuses_loopback_urls_and_redirects(inference_service, model_server, victim) -> None:
    base = inference_service.base_url
    for url in (f"http://127.0.0.1:{victim.port}/healthz", f"http://localhost:{victim.port}/x.gguf",
                f"http://[::ffff:127.0.0.1]:{victim.port}/x.gguf", f"127.0.0.1:{victim.port}/library/x:latest",
                "http://169.254.169.254/latest/meta-data/"):
        r = _pull(base, url)
        assert r.status_code == 400, (url, r.text)
        assert "refused" in r.json()["error"]
    # The configured registry is trusted, but its redirect to another loopback port is vetted
    # at connection time like any other destination.
    r = _pull(base, f"{model_server.url}/redirect?to=http://127.0.0.1:{victim.port}/x.gguf")
    assert r.status_code == 400 and "loopback" in r.json()["error"], r.text
    assert victim.hits == 0


def test_inference_api_pull_imports_only_catalog_packages(inference_service) -> None:
    for source in ("pkg:os", "pkg:loom_inference.app", "pkg:antigravity", "pkg:no_such_module"):
        r = _pull(inference_service.base_url, source)
        assert r.status_code == 400 and "unknown model package" in r.json()["error"], (source, r.text)


def test_inference_api_tokens_guard_the_api_and_the_mutating_routes(guarded_service, model_server) -> None:
    base = guarded_service.base_url
    assert httpx.get(base + "/api/tags").status_code == 401
    assert httpx.get(base + "/api/tags", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(base + "/api/tags", headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 200
    assert httpx.get(base + "/healthz").status_code == 200
    # the OpenAI SDK sends its api_key as the bearer token
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base + "/v1", api_key="wrong").models.list()
    assert openai.OpenAI(base_url=base + "/v1", api_key=API_TOKEN).models.list().data
    # configured names pass the Host allow-list, others do not
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    assert httpx.get(base + "/api/tags", headers={**auth, "Host": "llm.lan:11434"}).status_code == 200
    assert httpx.get(base + "/api/tags", headers={**auth, "Host": "evil.example"}).status_code == 403
    # mutating routes: the API token is not enough, the admin token is
    shutil.copyfile(model_server.blob_path, guarded_service.pull_dir / "mine.gguf")
    assert _pull(base, "mine.gguf", API_TOKEN).status_code == 403
    r = httpx.request("DELETE", base + "/api/delete", json={"model": "mine.gguf"}, headers=auth)
    assert r.status_code == 403 and "admin token" in r.json()["error"]
    ok = _pull(base, "mine.gguf", ADMIN_TOKEN)
    assert ok.status_code == 200 and ok.json()["status"] == "success", ok.text
    r = httpx.request("DELETE", base + "/api/delete", json={"model": "mine.gguf"},
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200


def test_inference_api_pull_folder_confines_paths_and_reads_only_regular_files(guarded_service) -> None:
    base, folder = guarded_service.base_url, guarded_service.pull_dir
    (folder / "escape.gguf").symlink_to("/etc/hostname")
    (folder / "zero.gguf").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.gguf")
    outside = "only files inside the pull folder"
    for source in ("/etc/hostname", "../../etc/hostname", "escape.gguf", "zero.gguf", str(folder / ".." / "x.gguf")):
        r = _pull(base, source, ADMIN_TOKEN)
        assert r.status_code == 400 and outside in r.json()["error"], (source, r.text)
    r = _pull(base, "fifo.gguf", ADMIN_TOKEN)  # would block forever if opened
    assert r.status_code == 400 and "not a regular file" in r.json()["error"]
    try:
        os.mknod(folder / "chardev.gguf", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    except PermissionError:
        pass  # no CAP_MKNOD here: the symlink case above covers a device outside the folder
    else:
        r = _pull(base, "chardev.gguf", ADMIN_TOKEN)
        assert r.status_code == 400 and "not a regular file" in r.json()["error"]
    r = _pull(base, "missing.gguf", ADMIN_TOKEN)
    assert r.status_code == 400 and "no such file" in r.json()["error"]


def test_inference_refuses_to_start_open_on_the_network(nats_url, database_url, tmp_path) -> None:
    """A bind off loopback without an API token: the process exits before binding anything."""
    exe = Path(sys.executable).parent / "loom-inference"
    env = {**os.environ, "LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(tmp_path),
           "LOOM_INFERENCE_HTTP_HOST": "0.0.0.0", "LOOM_INFERENCE_HTTP_PORT": str(infra.free_port()),
           "LOOM_INFERENCE_GRPC_PORT": str(infra.free_port()), "LOOM_INFERENCE_LOAD_MODELS_AT_START": "false"}
    env.pop("LOOM_INFERENCE_API_TOKEN", None)
    done = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "LOOM_INFERENCE_API_TOKEN" in done.stderr and "0.0.0.0" in done.stderr


def test_inference_mutating_routes_only_from_loopback_without_admin_token() -> None:
    """The peer address decides when no admin token is set (a remote peer cannot be produced
    over loopback, so the policy's decision is checked directly)."""
    policy = AccessPolicy.build(bind_host="0.0.0.0", api_token="t", admin_token=None, allowed_hosts=[],
                                cors_origins=[])
    auth = {"authorization": "Bearer t", "host": "192.0.2.10:11434"}
    assert policy.refusal("POST", "/api/pull", auth, "192.0.2.55")[0] == 403
    assert policy.refusal("DELETE", "/api/delete", auth, "2001:db8::5")[0] == 403
    assert policy.refusal("POST", "/api/chat", auth, "192.0.2.55") is None
    assert policy.refusal("POST", "/api/pull", auth, "127.0.0.1") is None
    assert policy.refusal("POST", "/api/chat", {"host": "192.0.2.10"}, "192.0.2.55")[0] == 401
