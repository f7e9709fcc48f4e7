"""Fixtures of the orchestrator tests; shared stand-ins are in orchestrator_fakes.py (kept
importable by the tests themselves: pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest
from orchestrator_fakes import UnackedStream
from orchestrator_testkit import Harness

from loom_common.devstack import infra
from loom_common.retry import RetryPolicy
from loom_common.testing import migrated_pool
from loom_orchestrator import events as events_module


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



@pytest.fixture
def unacked_stream(monkeypatch):
    """`unacked_stream(refusals)` -> UnackedStream: the run event publisher's stream refuses
    `refusals` publishes (None: every one) and its fast path sends nothing, as in a NATS outage;
    a refused message is published again at once, with no limit on tries."""
    def install(refusals: int | None) -> UnackedStream:
        stream = UnackedStream(refusals, real=events_module.messaging.publish)
        monkeypatch.setattr(events_module, "_jetstream", lambda broker: stream)
        monkeypatch.setattr(events_module.messaging, "publish", stream.publish)
        monkeypatch.setattr(events_module, "REPUBLISH_POLICY",
                            RetryPolicy(initial_interval_s=0.0, maximum_attempts=None))
        return stream

    return install
