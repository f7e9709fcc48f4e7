"""The built-in `tickets.create` tool: a support ticket row in the tools service's database.

It is a built-in (every tenant has it, no registration) but unlike the pure ones in builtins/ it
writes, so it needs the caller's tenant: its runner takes the whole `Call` (`run_call`), and the
executor hands it over. The arguments are checked against SPEC's schema before it runs (the
executor does that for every tool): the enums and lengths are the contract a model's tool call
must meet, so a hallucinated priority is refused with the field named, never stored.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from loom_tools.domain.types import Call, ToolSpec

CATEGORIES = ["question", "complaint", "order", "shipping", "return", "payment", "account", "product", "other"]
PRIORITIES = ["low", "normal", "high", "urgent"]

SPEC = ToolSpec(
    "tickets.create", "Open a support ticket for a human agent; answers the ticket's id and status.", "tickets",
    {"type": "object", "additionalProperties": False,
     "required": ["subject", "category", "priority", "summary", "customer"],
     "properties": {
         "subject": {"type": "string", "minLength": 1, "maxLength": 200},
         "category": {"enum": CATEGORIES},
         "priority": {"enum": PRIORITIES},
         "summary": {"type": "string", "minLength": 1, "maxLength": 20_000},
         "customer": {"type": "string", "minLength": 1, "maxLength": 255},
     }},
    {"builtin": True})


class TicketRunner:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def run(self, spec: ToolSpec, args: dict[str, Any], timeout_s: float) -> Any:
        raise RuntimeError("tickets.create needs the call's tenant: the executor uses run_call")

    async def run_call(self, call: Call, spec: ToolSpec, timeout_s: float) -> dict[str, Any]:
        a = call.arguments
        row = await self._pool.fetchrow(
            "INSERT INTO tickets (tenant_id, subject, category, priority, summary, customer, run_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, status, created_at",
            call.tenant_id, a["subject"], a["category"], a["priority"], a["summary"], a["customer"], call.run_id,
            timeout=timeout_s)
        return {"id": str(row["id"]), "status": row["status"], "created_at": row["created_at"].isoformat(),
                "subject": a["subject"], "category": a["category"], "priority": a["priority"]}
