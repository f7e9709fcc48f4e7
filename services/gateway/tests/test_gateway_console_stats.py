"""GET /console/api/workspaces/{ws}/statistics from the runs the gateway records: a real run
(scripted orchestrator) records its TTFT at the end; known rows check the sums, percentiles
and the per-day series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from gateway_testkit import make_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_a_streamed_run_records_its_time_to_first_token(gateway, admin, orchestrator) -> None:
    c = gateway.client
    app_id, key = await make_app(c, admin, "chat")
    r = await c.post("/v1/chat-messages", json={"query": "hi", "user": "u", "response_mode": "streaming"},
                     headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    stats = (await c.get(admin.ws("/statistics"), params={"app_id": app_id, "days": 1},
                         headers=admin.headers)).json()
    assert stats["requests"] == 1 and stats["errors"] == 0 and stats["tokens"] == 7
    assert stats["ttft_ms"]["p50"] is not None and stats["ttft_ms"]["p50"] >= 0
    assert stats["latency_ms"]["p50"] >= stats["ttft_ms"]["p50"] - 1000  # clocks of two processes: loose
    assert [(d["requests"], d["tokens"]) for d in stats["daily"]] == [(1, 7)]


async def test_sums_percentiles_and_days_from_the_recorded_runs(gateway, admin) -> None:
    c = gateway.client
    app_a, _ = await make_app(c, admin, "workflow", "a")
    app_b, _ = await make_app(c, admin, "workflow", "b")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = [  # (app, age, status, tokens, latency ms, ttft ms, invoke_from)
        (app_a, timedelta(0), "succeeded", 10, 100, 10, "service-api"),
        (app_a, timedelta(0), "failed", 0, 300, None, "service-api"),
        (app_a, timedelta(days=1), "succeeded", 30, 200, 20, "debugger"),
        (app_b, timedelta(days=2), "succeeded", 5, 400, 40, "service-api"),
        (app_a, timedelta(0), "succeeded", 999, 9999, 999, "single-node"),   # left out
        (app_a, timedelta(days=9), "succeeded", 999, 9999, 999, "service-api"),  # before the period
    ]
    conn = await asyncpg.connect(gateway.database_url, server_settings={"search_path": "gateway"})
    try:
        for i, (app, age, status, tokens, latency, ttft, source) in enumerate(rows):
            created = today - age + timedelta(seconds=1)  # within its UTC day
            await conn.execute(
                "INSERT INTO runs (id, tenant_id, app_id, mode, status, total_tokens, created_at, finished_at,"
                " first_token_ms, invoke_from) VALUES ($1, $2, $3, 'workflow', $4, $5, $6, $7, $8, $9)",
                f"run-{i}", admin.workspace_id, app, status, tokens, created,
                created + timedelta(milliseconds=latency), ttft, source)
    finally:
        await conn.close()

    stats = (await c.get(admin.ws("/statistics"), params={"days": 3}, headers=admin.headers)).json()
    assert (stats["requests"], stats["errors"], stats["tokens"]) == (4, 1, 45)
    assert stats["latency_ms"]["p50"] == pytest.approx(250, abs=1)   # of 100, 200, 300, 400
    assert stats["ttft_ms"]["p50"] == pytest.approx(20, abs=0.5)     # of 10, 20, 40 (a failed run has none)
    assert [d["date"] for d in stats["daily"]] == [(today - timedelta(days=n)).date().isoformat() for n in (2, 1, 0)]
    assert [(d["requests"], d["errors"], d["tokens"]) for d in stats["daily"]] == [(1, 0, 5), (1, 0, 30), (2, 1, 10)]

    one = (await c.get(admin.ws("/statistics"), params={"days": 3, "app_id": app_b}, headers=admin.headers)).json()
    assert (one["requests"], one["tokens"], one["ttft_ms"]["p99"]) == (1, 5, 40)
    empty = (await c.get(admin.ws("/statistics"), params={"days": 1, "app_id": app_b}, headers=admin.headers)).json()
    assert empty["requests"] == 0 and empty["latency_ms"] == {"p50": None, "p95": None, "p99": None}

    for params, field in (({"days": 0}, "days"), ({"days": 367}, "days"), ({"app_id": "x" * 65}, "app_id")):
        r = await c.get(admin.ws("/statistics"), params=params, headers=admin.headers)
        assert r.status_code == 400 and r.json()["field"] == field
    assert (await c.get(admin.ws("/statistics"), params={"app_id": "nope"}, headers=admin.headers)).status_code == 404
