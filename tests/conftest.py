"""Cross-service tests share the real NATS/Postgres fixtures of loom_common.testing, and the
orchestrator's test kit (graph builders, the bus client, a held model), which lives beside the
orchestrator's own tests rather than in its package."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "orchestrator" / "tests"))
