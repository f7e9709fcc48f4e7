"""Fixtures of the inference tests: a loopback model registry / file server, and one real
inference service process shared by the HTTP, SDK and CLI tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loom_common.devstack import infra
from loom_common.testing import ModelServer, ServiceProcess


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
