"""Cross-service tests share the real NATS/Postgres fixtures of loom_common.testing, and the
orchestrator's test kit (graph builders, the bus client, a held model), which lives beside the
orchestrator's own tests rather than in its package. Helpers of their own (chat_stream.py) sit
in this folder, which is put on the path too (pytest runs with --import-mode=importlib)."""

import sys
from pathlib import Path

import pytest

from loom_common.devstack import infra

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "orchestrator" / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def own_nats(tmp_path):
    """A NATS server of the test's own, for faults that kill it: `start()` brings it back on the
    same port and JetStream store (the session's server is shared by every test)."""
    server = infra.EmbeddedNats(tmp_path / "nats").start()
    yield server
    server.stop()
