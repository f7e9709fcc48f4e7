"""The audit trail: one row per invocation, whatever its outcome (written by store/audit.py).

Arguments are stored only as a SHA-256 of their canonical JSON, so the trail proves what was
called without keeping user data or secrets.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from loom_tools.domain.types import Call, Outcome


def args_sha256(arguments: Any) -> str:
    canon = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()


class AuditSink(Protocol):
    async def record(self, call: Call, outcome: Outcome) -> None: ...
