"""Fixtures of the inference tests: a loopback model registry / file server, and one real
inference service process shared by the HTTP, SDK and CLI tests."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loom_common.devstack import infra
from loom_common.testing import ServiceProcess, write_header_only_gguf


class ModelServer:
    """Serves one tiny GGUF as an Ollama-style registry (/v2/...), as a plain file (/files/)
    with Range support, as a file whose first download breaks half-way (/flaky/), and
    redirects anywhere (/redirect?to=URL)."""

    def __init__(self, root: Path) -> None:
        self.blob_path = root / "tiny.gguf"
        write_header_only_gguf(self.blob_path, {"general.architecture": "gemma3", "general.file_type": 15,
                                            "general.size_label": "1M"}, padding=3 << 20)
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


@pytest.fixture(scope="session")
def model_server(tmp_path_factory) -> Iterator[ModelServer]:
    server = ModelServer(tmp_path_factory.mktemp("registry"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def inference_service(nats_url, database_url, model_server, tmp_path_factory) -> Iterator[ServiceProcess]:
    """One real `loom-inference` process (real NATS, Postgres, gRPC and the bundled model)."""
    home = tmp_path_factory.mktemp("inference-home")
    http_port, grpc_port = infra.free_port(), infra.free_port()
    env = {"LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(home),
           "LOOM_INFERENCE_HTTP_PORT": str(http_port), "LOOM_INFERENCE_GRPC_PORT": str(grpc_port),
           "LOOM_INFERENCE_REGISTRY_URL": model_server.url, "PYTHONUNBUFFERED": "1"}
    proc = ServiceProcess("inference", env, http_port, home / "inference.log").start(120)  # models load first
    proc.grpc_port = grpc_port  # type: ignore[attr-defined]
    proc.home = home  # type: ignore[attr-defined]
    yield proc
    proc.stop()


class StandaloneEngine:
    """`llm-engine serve` as a laptop user runs it: its own home, free ports, and no NATS or
    Postgres anywhere (their URLs point at a closed port, so any attempt to reach them would
    keep the engine from ever turning ready)."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import sys

        import httpx

        self.home = home
        self.http_port, self.grpc_port = infra.free_port(), infra.free_port()
        closed = infra.free_port()
        self.log_path = home / "llm-engine.log"
        full = {**os.environ, "LOOM_HOME": str(home), "LOOM_INFERENCE_HTTP_PORT": str(self.http_port),
                "LOOM_INFERENCE_GRPC_PORT": str(self.grpc_port), "PYTHONUNBUFFERED": "1",
                "LOOM_NATS_URL": f"nats://127.0.0.1:{closed}",
                "LOOM_DATABASE_URL": f"postgresql://x@127.0.0.1:{closed}/x", **(env or {})}
        full.pop("LOOM_INFERENCE_CONFIG", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "llm-engine"), "serve"], env=full,
                                     stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise infra.GaveUp(f"llm-engine exited {self.proc.returncode}:\n{self.log()}")
            return httpx.get(self.base_url + "/readyz", timeout=2.0).status_code == 200

        infra.wait_until(ready, 180, "llm-engine serve", interval_s=0.2)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> int | None:
        return infra.stop_process(self.proc, wait_s=30)


@pytest.fixture(scope="session")
def standalone_engine(tmp_path_factory) -> Iterator[StandaloneEngine]:
    """One standalone engine for the tests that only read (chat, generate, embed, show, ps)."""
    engine = StandaloneEngine(tmp_path_factory.mktemp("standalone-home"))
    yield engine
    engine.stop()
