"""Gateway test fixtures: see gateway_testkit.py (kept importable by the tests themselves)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from gateway_testkit import admin, gateway, orchestrator  # noqa: E402, F401
