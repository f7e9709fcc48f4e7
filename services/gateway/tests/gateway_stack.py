"""The whole Loom stack as real processes (inference with the bundled model, rag, tools,
orchestrator, gateway) on the test session's NATS and Postgres, for the end-to-end tests and
the benchmark. Nothing here is a fake."""

from __future__ import annotations

import asyncio
import ssl
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loom_common import db, tls
from loom_common.devstack import db_roles, infra
from loom_common.devstack.nats_auth import NatsUsers
from loom_common.testing import ServiceProcess

PASSWORD = "correct horse battery"


@dataclass
class Stack:
    gateway_url: str
    inference_addr: str
    procs: list[ServiceProcess] = field(default_factory=list)
    admin_url: str = ""  # the gateway's internal admin port: /readyz, /metrics
    token: str = ""
    workspace_id: str = ""
    verify: ssl.SSLContext | bool = True  # httpx's verify= for the gateway (its CA when it serves TLS)

    @property
    def console(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def http(self) -> httpx.Client:
        """A client for the gateway (verifying its certificate when the stack runs TLS)."""
        return httpx.Client(verify=self.verify)

    def ws(self, path: str = "") -> str:
        return f"{self.gateway_url}/console/api/workspaces/{self.workspace_id}{path}"

    def stop(self) -> None:
        # Side by side: each drains on SIGTERM (up to its grace), so one after another adds up.
        def stop(proc: ServiceProcess) -> None:
            t0 = time.monotonic()
            proc.stop(15)  # then SIGKILL: a test stack need not drain
            if time.monotonic() - t0 > 10:
                warnings.warn(f"loom-{proc.name} took {time.monotonic() - t0:.0f} s to stop:\n{proc.log()[-1500:]}",
                              stacklevel=1)

        with ThreadPoolExecutor(max(1, len(self.procs))) as pool:
            list(pool.map(stop, self.procs))


def start_stack(nats_url: str, database_url: str, home: Path, *, gateway_env: dict | None = None,
                inference_env: dict | None = None, role_passwords: dict[str, str] | None = None,
                nats_users: NatsUsers | None = None, service_env: dict | None = None) -> Stack:
    """With `role_passwords` (devstack.db_roles) every service logs in to Postgres as its own role,
    with `nats_users` (devstack.nats_auth) to NATS as its own user, as under `make up`;
    `service_env` goes to every service (e.g. a certificate's settings: the whole stack on TLS)."""
    home.mkdir(parents=True, exist_ok=True)
    # The database first: services starting together would race on CREATE DATABASE
    # (ensure_database catches DuplicateDatabaseError, a concurrent create raises UniqueViolation).
    if role_passwords:
        dsns = asyncio.run(db_roles.provision(database_url, role_passwords))
    else:
        asyncio.run(db.ensure_database(database_url))
        dsns = {}
    own = {name: {"LOOM_DATABASE_URL": dsns[name]} if name in dsns else {} for name in db_roles.SERVICE_SCHEMAS}
    if nats_users:
        for name in own:
            own[name] |= {"LOOM_NATS_USER": name, "LOOM_NATS_PASSWORD": nats_users.passwords[name]}
    for name in own:
        own[name] |= service_env or {}
    try:
        stack = _start_processes(nats_url, database_url, home, gateway_env, inference_env, own)
    except infra.GaveUp:
        # Free ports are picked before the processes bind them: on a busy machine another test
        # session can take one in between, and the service exits. Once more, on fresh ports.
        stack = _start_processes(nats_url, database_url, home, gateway_env, inference_env, own)
    _sign_in(stack)
    return stack


def _start_processes(nats_url: str, database_url: str, home: Path, gateway_env: dict | None,
                     inference_env: dict | None, own: dict[str, dict[str, str]]) -> Stack:
    names = ("inference", "rag", "tools", "orchestrator", "gateway")
    picked: set[int] = set()
    while len(picked) < 2 * len(names) + 1:  # eleven distinct ports
        picked.add(infra.free_port())
    free = iter(sorted(picked))
    ports = {name: (next(free), next(free)) for name in names}
    gateway_admin = next(free)  # the gateway's /readyz and /metrics: not on its public port
    addr = {name: f"127.0.0.1:{grpc}" for name, (_, grpc) in ports.items()}
    base = {"LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(home),
            "PYTHONUNBUFFERED": "1", "LOOM_INFERENCE_ADDR": addr["inference"], "LOOM_RAG_ADDR": addr["rag"],
            "LOOM_TOOLS_ADDR": addr["tools"], "LOOM_LOG_LEVEL": "WARNING",
            # A stopped stack need not drain long (in-flight runs of a test are abandoned anyway).
            "LOOM_GRACEFUL_TIMEOUT_S": "5"}
    extra = {"rag": {"LOOM_RAG_INGEST_ACK_WAIT_S": "30"},
             "gateway": {"LOOM_GATEWAY_ADMIN_PORT": str(gateway_admin), **(gateway_env or {})},
             "inference": inference_env or {}}
    tls_on = "LOOM_TLS_CERT_FILE" in own["gateway"]
    scheme = "https" if tls_on else "http"
    stack = Stack(gateway_url=f"{scheme}://127.0.0.1:{ports['gateway'][0]}", inference_addr=addr["inference"],
                  admin_url=f"{scheme}://127.0.0.1:{gateway_admin}",
                  verify=tls.client_context(Path(own["gateway"]["LOOM_TLS_CA_FILE"])) if tls_on else True)
    for name in names:
        http, grpc = ports[name]
        prefix = f"LOOM_{name.upper()}_"
        env = {**base, f"{prefix}HTTP_PORT": str(http), f"{prefix}GRPC_PORT": str(grpc), **own[name],
               **extra.get(name, {})}
        stack.procs.append(ServiceProcess(name, env, http, home / f"{name}.log",
                                          gateway_admin if name == "gateway" else None))
    # Started side by side (each waits for its own /readyz, bounded): the model load is the long pole.
    try:
        with ThreadPoolExecutor(len(stack.procs)) as pool:
            for done in [pool.submit(p.start, 180 if p.name == "inference" else 120) for p in stack.procs]:
                done.result()
        # A /readyz answered by someone else's server on a port taken in between: ours exited.
        dead = [p.name for p in stack.procs if p.proc is None or p.proc.poll() is not None]
        if dead:
            raise infra.GaveUp(f"exited after start: {dead}")
    except BaseException:
        stack.stop()
        raise
    return stack


def _sign_in(stack: Stack) -> None:
    with stack.http() as http:
        r = http.post(f"{stack.gateway_url}/console/api/setup", json={"email": "admin@example.com", "name": "Admin",
                                                                      "password": PASSWORD, "workspace_name": "E2E"})
        if r.status_code == 403:  # a stack on a database set up before: log in instead
            r = http.post(f"{stack.gateway_url}/console/api/login", json={"email": "admin@example.com",
                                                                          "password": PASSWORD})
            stack.token = r.json()["access_token"]
            stack.workspace_id = http.get(f"{stack.gateway_url}/console/api/workspaces",
                                          headers=stack.console).json()["data"][0]["id"]
        else:
            r.raise_for_status()
            stack.token, stack.workspace_id = r.json()["access_token"], r.json()["workspace"]["id"]


def app_with_key(stack: Stack, mode: str, dsl: dict | None = None, name: str = "app",
                 max_tokens: int | None = None, features: dict | None = None) -> tuple[str, str]:
    """Create and publish an app (its graph replaced by `dsl`, its features set to `features`;
    every LLM node capped at `max_tokens`: the tests assert structure, and a loaded 2-core box
    decodes ~10 tokens/s)."""
    h = stack.console
    with stack.http() as http:
        app_id = http.post(stack.ws("/apps"), json={"name": name, "mode": mode}, headers=h).json()["id"]
        if dsl is not None or max_tokens is not None or features is not None:
            draft = http.get(stack.ws(f"/apps/{app_id}/draft"), headers=h).json()["dsl"]
            if dsl is not None:
                draft["workflow"]["graph"] = dsl
            if features is not None:
                draft["workflow"]["features"] = features
            if max_tokens is not None:
                for node in draft["workflow"]["graph"]["nodes"]:
                    if "model" in node["data"]:
                        node["data"]["model"].setdefault("completion_params", {})["max_tokens"] = max_tokens
            r = http.put(stack.ws(f"/apps/{app_id}/draft"), json={"dsl": draft}, headers=h)
            r.raise_for_status()
        http.post(stack.ws(f"/apps/{app_id}/publish"), headers=h).raise_for_status()
        key = http.post(stack.ws(f"/apps/{app_id}/api-keys"), json={"name": "e2e"}, headers=h).json()["token"]
    return app_id, key
