"""The audit trail's table: one row per invocation, arguments only as their SHA-256."""

from __future__ import annotations

import asyncpg

from loom_common.logging import get_logger
from loom_tools.domain.audit import args_sha256
from loom_tools.domain.types import Call, Outcome

log = get_logger(__name__)


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
