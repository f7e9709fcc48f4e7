"""The audit trail: one row per invocation, whatever its outcome.

Arguments are stored only as a SHA-256 of their canonical JSON, so the trail proves what was
called without keeping user data or secrets.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

import asyncpg

from loom_common.logging import get_logger
from loom_tools.domain.types import Call, Outcome

log = get_logger(__name__)


def args_sha256(arguments: Any) -> str:
    canon = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()


class AuditSink(Protocol):
    async def record(self, call: Call, outcome: Outcome) -> None: ...


class PgAudit:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, call: Call, outcome: Outcome) -> None:
        try:
            await self._pool.execute(
                "INSERT INTO invocations (tenant_id, tool, run_id, node_id, args_sha256, duration_ms, "
                "outcome, error_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                call.tenant_id, call.tool, call.run_id, call.node_id, args_sha256(call.arguments),
                outcome.duration_ms, "ok" if outcome.ok else "error", outcome.error_code)
        except Exception as exc:  # the call already happened: a lost audit row is logged, not raised
            log.error("audit write failed", tool=call.tool, error=repr(exc))
