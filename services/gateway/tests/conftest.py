"""Gateway test fixtures: see gateway_testkit.py (kept importable by the tests themselves), and
the real stack for the end-to-end and schema tests (gateway_stack.py)."""

import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest
from gateway_testkit import admin, gateway, orchestrator  # noqa: F401

from loom_common.db import _with_database
from loom_common.devstack import infra, nats_auth

_HERE = Path(__file__).parent
_running: list = []   # the stack and its NATS while they run (stopped after the last gateway test)


def _stop_stack() -> None:
    while _running:
        _running.pop().stop()


@pytest.fixture(scope="session")
def stack(database_url, tmp_path_factory, service_role_passwords):
    """The real stack (every service as a process), shared by the e2e and schema tests.

    It runs on its OWN NATS server: its orchestrator and rag join the durable consumers every
    orchestrator and rag share (runs.requested, documents.ingest), so on the session's NATS
    they would take messages meant for other tests' services, and those services ours: in a
    whole-suite run that left later tests waiting for runs and documents that never came."""
    from gateway_stack import start_stack

    home = tmp_path_factory.mktemp("stack")
    nats = infra.EmbeddedNats(home / "nats").start()
    _running.append(nats)
    db = _with_database(database_url, f"e2e_{uuid.uuid4().hex[:10]}")
    try:
        # Every service as its own Postgres role and NATS user, as `make up` runs them.
        s = start_stack(nats.url, db, home, gateway_env={"LOOM_GATEWAY_STREAM_IDLE_TIMEOUT_S": "60"},
                        role_passwords=service_role_passwords,
                        nats_users=nats_auth.load_users(infra.nats_secrets_dir(nats.store_dir)))
    except BaseException:
        _stop_stack()
        raise
    _running.append(s)
    yield s
    _stop_stack()


def pytest_runtest_teardown(item, nextitem):
    # Session-scoped (two modules share it) but only used here: stop it once the last gateway
    # test is done rather than at the end of the whole suite, so ~2 GB of processes do not idle
    # through every other service's tests.
    if nextitem is None or Path(nextitem.path).parent != _HERE:
        _stop_stack()
