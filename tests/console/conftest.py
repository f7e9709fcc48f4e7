"""Browser-test harness for the console: the real stack, the real console server, real Chromium.

Fixtures (import nothing; pytest hands them to any test under tests/console/):

- `console_dist` (session): the console built from the current sources into a private folder.
- `console_stack` (module): every Loom service as a process (inference with the bundled model,
  rag, tools, orchestrator, gateway; gateway_stack.py's start-up) on its own NATS server and a
  fresh database, plus `node services/console/server.mjs` in front of the gateway on a free port.
  The database is NOT set up: the first test may walk the setup wizard; `admin` does it
  through the API otherwise.
- `admin` (module): the admin's token and workspace (setup done if it was not).
- `browser` (module): Debian's Chromium driven by Playwright (`executable_path`, `--no-sandbox`);
  Playwright's own browser download is never used.
- `page` (function): a fresh 1280×800 context and page. After the test it saves a screenshot
  to `.loom/console-tests/<test>.png`, and on failure a Playwright trace
  (`<test>-trace.zip`; open with `playwright show-trace`). It fails a test whose page threw an
  uncaught exception or logged a console error (network 4xx/5xx lines aside: tests provoke them).
- `signed_in` (function): `page`, signed in as the admin, on the app list.

Chromium missing? `apt-get install -y chromium` (make test does it).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from console_harness import (
    ADMIN_EMAIL,
    ADMIN_NAME,
    ARTIFACTS,
    PASSWORD,
    WORKSPACE,
    Admin,
    ConsoleStack,
    build_console,
    chromium_path,
    sign_in,
    start_all,
)


@pytest.fixture(scope="session")
def console_dist(tmp_path_factory) -> Path:
    """The console built once per test session from the current sources, into a private folder."""
    return build_console(tmp_path_factory.mktemp("console-dist"))


@pytest.fixture(scope="module")
def console_stack(database_url, console_dist, tmp_path_factory) -> Iterator[ConsoleStack]:
    nats, stack, server = start_all(database_url, tmp_path_factory.mktemp("console-stack"), console_dist)
    try:
        yield ConsoleStack(server.url, stack)
    finally:
        server.stop()
        stack.stop()
        nats.stop()


@pytest.fixture(scope="module")
def admin(console_stack: ConsoleStack) -> Admin:
    if console_stack.api("GET", "/console/api/setup").json()["step"] != "finished":
        r = console_stack.api("POST", "/console/api/setup", json={
            "email": ADMIN_EMAIL, "name": ADMIN_NAME, "password": PASSWORD, "workspace_name": WORKSPACE})
        r.raise_for_status()
        return Admin(r.json()["access_token"], r.json()["workspace"]["id"])
    r = console_stack.api("POST", "/console/api/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    r.raise_for_status()
    token = r.json()["access_token"]
    workspaces = console_stack.api("GET", "/console/api/workspaces", token).json()["data"]
    return Admin(token, workspaces[0]["id"])


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"], headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser, request) -> Iterator:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    context.tracing.start(screenshots=True, snapshots=True, sources=False)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    pg.on("console", lambda msg: problems.append(f"console.error: {msg.text}")
          if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    try:
        yield pg
    finally:
        with contextlib.suppress(Exception):  # a closed page has nothing to show
            pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        failed = request.node.stash.get(_FAILED, True)
        context.tracing.stop(path=str(ARTIFACTS / f"{name}-trace.zip") if failed else None)
        context.close()
    assert not problems, f"the page reported errors: {problems}"


@pytest.fixture
def signed_in(page, console_stack: ConsoleStack, admin: Admin):
    sign_in(page, console_stack.url, admin.email, admin.password)
    return page
