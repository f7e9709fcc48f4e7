"""Statistics of a workspace's (or one app's) runs over the last days, from the gateway's own
run records: requests, errors, tokens, latency and time-to-first-token percentiles, per day.

Latency is a run's acceptance to its recorded end (`finished_at - created_at`); TTFT is the
acceptance to the orchestrator's first answer text (`first_token_ms`, recorded with the end).
Runs of a single node (the editor's node test) are left out; the editor's whole-draft runs
count, as they are runs of the app. Days are UTC calendar days, today included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

PERCENTILES = (0.5, 0.95, 0.99)

_TOTALS = """
SELECT count(*) AS requests, count(*) FILTER (WHERE status = 'failed') AS errors,
       COALESCE(sum(total_tokens), 0) AS tokens,
       percentile_cont($4::float8[]) WITHIN GROUP (ORDER BY first_token_ms) AS ttft,
       percentile_cont($4::float8[]) WITHIN GROUP (
           ORDER BY EXTRACT(EPOCH FROM finished_at - created_at) * 1000) AS latency
FROM runs
WHERE tenant_id = $1 AND ($2::text IS NULL OR app_id = $2) AND created_at >= $3 AND invoke_from <> 'single-node'
"""

_DAILY = """
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS requests,
       count(*) FILTER (WHERE status = 'failed') AS errors, COALESCE(sum(total_tokens), 0) AS tokens
FROM runs
WHERE tenant_id = $1 AND ($2::text IS NULL OR app_id = $2) AND created_at >= $3 AND invoke_from <> 'single-node'
GROUP BY 1
"""


def _percentiles(values: list[float | None] | None) -> dict[str, float | None]:
    values = values or [None] * len(PERCENTILES)
    return {f"p{round(p * 100)}": (round(v, 1) if v is not None else None) for p, v in zip(PERCENTILES, values,
                                                                                          strict=True)}


async def statistics(pool: asyncpg.Pool, tenant_id: str, app_id: str | None, days: int) -> dict:
    """Totals and a row per day (days without runs included, as zeros), oldest day first."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    totals = await pool.fetchrow(_TOTALS, tenant_id, app_id, since, list(PERCENTILES))
    per_day = {r["day"]: r for r in await pool.fetch(_DAILY, tenant_id, app_id, since)}
    daily = []
    for i in range(days):
        day = first + timedelta(days=i)
        r = per_day.get(day)
        daily.append({"date": day.isoformat(), "requests": r["requests"] if r else 0,
                      "errors": r["errors"] if r else 0, "tokens": int(r["tokens"]) if r else 0})
    return {"requests": totals["requests"], "errors": totals["errors"], "tokens": int(totals["tokens"]),
            "ttft_ms": _percentiles(totals["ttft"]), "latency_ms": _percentiles(totals["latency"]),
            "days": days, "since": since.isoformat(), "app_id": app_id, "daily": daily}
