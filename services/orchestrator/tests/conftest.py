"""Fixtures of the orchestrator tests; shared stand-ins are in orchestrator_fakes.py (kept
importable by the tests themselves: pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest

from loom_common import db
from loom_common.devstack import infra
from loom_common.migrations import apply_migrations
from loom_orchestrator.testkit import Harness


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture
async def pool(database_url):
    """A pool on the orchestrator's schema of the session's Postgres, migrated."""
    await db.ensure_database(database_url)
    await apply_migrations(database_url, "orchestrator", "loom_orchestrator.migrations")
    pool = await db.create_pool(database_url, schema="orchestrator", min_size=1, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture
async def nats(tmp_path):
    """A NATS server of this test's own (durable consumers and their ack waits are its alone)."""
    server = infra.EmbeddedNats(tmp_path / "nats").start()
    yield server.url
    server.stop()

