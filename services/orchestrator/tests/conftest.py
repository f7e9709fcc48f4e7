"""Fixtures of the orchestrator tests."""

import pytest

from loom_orchestrator.testkit import Harness


@pytest.fixture
def harness() -> Harness:
    return Harness()
