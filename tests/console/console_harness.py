"""The console's browser-test harness, as plain code (the fixtures in conftest.py use it; so can
other test modules, e.g. the editor's): the console server process, the stack behind it, signing in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import httpx
import pytest

from loom_common.db import _with_database
from loom_common.devstack import infra

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "services" / "console"
ARTIFACTS = ROOT / ".loom" / "console-tests"
sys.path.insert(0, str(ROOT / "services" / "gateway" / "tests"))

import gateway_stack  # noqa: E402  (the gateway's whole-stack start-up, shared)

ADMIN_EMAIL = "admin@example.com"
ADMIN_NAME = "Ada Admin"
PASSWORD = "correct horse battery"
WORKSPACE = "Console tests"


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is missing: apt-get install -y chromium (make test installs it)")
    return path


def build_console(out: Path) -> Path:
    """Build the console from the current sources into `out` (vite only, ~10 s): a private copy,
    so a concurrent `npm run build` (which empties services/console/dist) cannot pull the files
    from under a running test."""
    if not (CONSOLE / "node_modules").exists():
        pytest.fail("services/console/node_modules is missing: run make setup (npm ci)")
    subprocess.run(["npx", "vite", "build", "--outDir", str(out), "--emptyOutDir", "--logLevel", "warn"],
                   cwd=CONSOLE, check=True, timeout=300, capture_output=True)
    return out


class ConsoleServer:
    """`node server.mjs` on a free port, proxying the given gateway."""

    def __init__(self, gateway_url: str, dist: Path, log_path: Path):
        self.port = infra.free_port()
        self.gateway_url, self.dist, self.log_path = gateway_url, dist, log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ConsoleServer:
        env = {**os.environ, "LOOM_CONSOLE_PORT": str(self.port), "LOOM_CONSOLE_HOST": "127.0.0.1",
               "LOOM_GATEWAY_URL": self.gateway_url, "LOOM_CONSOLE_DIST": str(self.dist)}
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(["node", str(CONSOLE / "server.mjs")], env=env, stdout=log,
                                     stderr=subprocess.STDOUT)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise infra.GaveUp(f"server.mjs exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        infra.wait_until(ready, 30, "console server", interval_s=0.1)
        return self

    def stop(self) -> None:
        infra.stop_process(self.proc)


@dataclass
class ConsoleStack:
    url: str                      # the console (what the browser opens); /console/api and /v1 proxied
    stack: gateway_stack.Stack    # the services behind it (stack.gateway_url: the gateway itself)

    def service_url(self, name: str) -> str:
        """The HTTP base URL of one of the stack's services (e.g. the engine's OpenAI API)."""
        return next(p.base_url for p in self.stack.procs if p.name == name)

    def api(self, method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
        """Call the gateway through the console's proxy, as the browser does."""
        headers = {**kw.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=120, **kw)


def start_all(database_url: str, home: Path, dist: Path, inference_env: dict | None = None
              ) -> tuple[infra.EmbeddedNats, gateway_stack.Stack, ConsoleServer]:
    # Its own NATS: its orchestrator and rag join durable consumers that every orchestrator and
    # rag share (see services/gateway/tests/conftest.py), so they must not meet other tests' ones.
    nats = infra.EmbeddedNats(home / "nats").start()
    url = _with_database(database_url, f"console_{uuid.uuid4().hex[:10]}")
    # Loopback endpoints allowed: the wizard's "test connection" calls this stack's own engine.
    env = {"LOOM_GATEWAY_STREAM_IDLE_TIMEOUT_S": "60", "LOOM_GATEWAY_ENDPOINTS_ALLOW_LOOPBACK": "true"}
    try:
        # The gateway tests' start-up, minus its sign-in (which would run the setup): the first
        # console test walks the setup wizard on this fresh database. In a thread: Playwright's
        # sync API keeps an event loop running on this one, and start_stack uses asyncio.run.
        with mock.patch.object(gateway_stack, "_sign_in", lambda stack: None), ThreadPoolExecutor(1) as pool:
            stack = pool.submit(gateway_stack.start_stack, nats.url, url, home, gateway_env=env,
                                inference_env=inference_env).result()
    except BaseException:
        nats.stop()
        raise
    try:
        server = ConsoleServer(stack.gateway_url, dist, home / "console.log").start()
    except BaseException:
        stack.stop()
        nats.stop()
        raise
    return nats, stack, server


@dataclass
class Admin:
    token: str
    workspace_id: str
    email: str = ADMIN_EMAIL
    password: str = PASSWORD


def sign_in(page, url: str, email: str, password: str) -> None:
    """Log in through the login form and wait for the workspace's app list."""
    page.goto(url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Apps").wait_for()
