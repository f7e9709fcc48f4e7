"""Fixtures of the orchestrator tests; shared stand-ins are in orchestrator_fakes.py (kept
importable by the tests themselves: pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest
from orchestrator_testkit import Harness

from loom_common.devstack import infra
from loom_common.testing import migrated_pool


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture
async def pool(database_url):
    """A pool on the orchestrator's schema of the session's Postgres, migrated."""
    async with migrated_pool(database_url, "orchestrator", "loom_orchestrator.migrations", min_size=1,
                             max_size=8) as pool:
        yield pool


@pytest.fixture
async def nats(tmp_path):
    """A NATS server of this test's own (durable consumers and their ack waits are its alone)."""
    server = infra.EmbeddedNats(tmp_path / "nats").start()
    yield server.url
    server.stop()

