"""The whole Loom stack as real processes (inference with the bundled model, rag, tools,
orchestrator, gateway) on the test session's NATS and Postgres, for the end-to-end tests and
the benchmark. Nothing here is a fake."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loom_common import db
from loom_common.devstack import infra
from loom_common.testing import ServiceProcess

PASSWORD = "correct horse battery"


@dataclass
class Stack:
    gateway_url: str
    inference_addr: str
    procs: list[ServiceProcess] = field(default_factory=list)
    token: str = ""
    workspace_id: str = ""

    @property
    def console(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def ws(self, path: str = "") -> str:
        return f"{self.gateway_url}/console/api/workspaces/{self.workspace_id}{path}"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def start_stack(nats_url: str, database_url: str, home: Path, *, gateway_env: dict | None = None) -> Stack:
    home.mkdir(parents=True, exist_ok=True)
    ports = {name: (infra.free_port(), infra.free_port()) for name in ("inference", "rag", "tools", "orchestrator",
                                                                     "gateway")}
    addr = {name: f"127.0.0.1:{grpc}" for name, (_, grpc) in ports.items()}
    base = {"LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(home),
            "PYTHONUNBUFFERED": "1", "LOOM_INFERENCE_ADDR": addr["inference"], "LOOM_RAG_ADDR": addr["rag"],
            "LOOM_TOOLS_ADDR": addr["tools"], "LOOM_LOG_LEVEL": "WARNING"}
    extra = {"rag": {"LOOM_RAG_INGEST_ACK_WAIT_S": "30"}, "gateway": gateway_env or {}}
    stack = Stack(gateway_url=f"http://127.0.0.1:{ports['gateway'][0]}", inference_addr=addr["inference"])
    for name in ("inference", "rag", "tools", "orchestrator", "gateway"):
        http, grpc = ports[name]
        prefix = f"LOOM_{name.upper()}_"
        env = {**base, f"{prefix}HTTP_PORT": str(http), f"{prefix}GRPC_PORT": str(grpc), **extra.get(name, {})}
        stack.procs.append(ServiceProcess(name, env, http, home / f"{name}.log"))
    # The database first: services starting together would race on CREATE DATABASE
    # (ensure_database catches DuplicateDatabaseError, a concurrent create raises UniqueViolation).
    asyncio.run(db.ensure_database(database_url))
    # Started side by side (each waits for its own /readyz): the model load is the long pole.
    try:
        with ThreadPoolExecutor(len(stack.procs)) as pool:
            for done in [pool.submit(p.start, 180 if p.name == "inference" else 120) for p in stack.procs]:
                done.result()
    except Exception:
        stack.stop()
        raise
    r = httpx.post(f"{stack.gateway_url}/console/api/setup", json={"email": "admin@example.com", "name": "Admin",
                                                                   "password": PASSWORD, "workspace_name": "E2E"})
    if r.status_code == 403:  # a stack on a database set up before: log in instead
        r = httpx.post(f"{stack.gateway_url}/console/api/login", json={"email": "admin@example.com",
                                                                       "password": PASSWORD})
        stack.token = r.json()["access_token"]
        stack.workspace_id = httpx.get(f"{stack.gateway_url}/console/api/workspaces",
                                       headers=stack.console).json()["data"][0]["id"]
    else:
        r.raise_for_status()
        stack.token, stack.workspace_id = r.json()["access_token"], r.json()["workspace"]["id"]
    return stack


def app_with_key(stack: Stack, mode: str, dsl: dict | None = None, name: str = "app") -> tuple[str, str]:
    h = stack.console
    app_id = httpx.post(stack.ws("/apps"), json={"name": name, "mode": mode}, headers=h).json()["id"]
    if dsl is not None:
        draft = httpx.get(stack.ws(f"/apps/{app_id}/draft"), headers=h).json()["dsl"]
        draft["workflow"]["graph"] = dsl
        r = httpx.put(stack.ws(f"/apps/{app_id}/draft"), json={"dsl": draft}, headers=h)
        r.raise_for_status()
    httpx.post(stack.ws(f"/apps/{app_id}/publish"), headers=h).raise_for_status()
    key = httpx.post(stack.ws(f"/apps/{app_id}/api-keys"), json={"name": "e2e"}, headers=h).json()["token"]
    return app_id, key
