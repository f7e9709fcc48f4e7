"""Every service starts as its own process against real NATS and Postgres, applies its
migrations, answers /healthz /readyz /metrics (the gateway on its internal admin port, not its
public one), and stops cleanly on SIGTERM."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest

from loom_common.devstack import infra

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICES = ["inference", "tools", "rag", "orchestrator", "gateway"]


async def test_all_five_services_run_and_drain(run_service, database_url) -> None:
    procs = {}
    for name in SERVICES:
        env = {}
        if name in ("inference", "tools", "rag"):
            env[f"LOOM_{name.upper()}_GRPC_PORT"] = str(infra.free_port())
        procs[name] = run_service(name, env=env, timeout_s=120 if name == "inference" else 60)
    for name, proc in procs.items():
        assert httpx.get(proc.admin_url + "/healthz").json()["service"] == name
        ready = httpx.get(proc.admin_url + "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["nats"] and ready.json()["checks"]["postgres"]
        metrics = httpx.get(proc.admin_url + "/metrics").text
        assert "python_info" in metrics
        assert f'loom_http_requests_total{{method="GET",route="/healthz",service="{name}",status="200"}}' in metrics
        # every service exports its database pool (loom_common.pool_metrics)
        pool = {line.split("{")[0] for line in metrics.splitlines()
                if line.startswith("loom_db_pool_") and f'service="{name}"' in line}
        assert pool == {"loom_db_pool_connections", "loom_db_pool_max_connections", "loom_db_pool_waiting"}, name
    # The gateway's port is public: its admin routes are on the internal admin port only.
    gateway = procs["gateway"]
    assert gateway.admin_port != gateway.http_port
    for path in ("/metrics", "/readyz", "/healthz"):
        assert httpx.get(gateway.base_url + path).status_code == 404, path
    conn = await asyncpg.connect(database_url)
    try:
        for name in SERVICES:
            applied = await conn.fetchval(f"SELECT count(*) FROM {name}.schema_migrations")
            assert applied >= 1, name
    finally:
        await conn.close()
    for name, proc in procs.items():
        assert proc.stop() == 0, f"{name} did not exit cleanly:\n{proc.log()}"
        lines = [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]
        assert lines, f"{name} wrote no JSON log lines"
        assert all(line.get("service") == name for line in lines)
        assert any(line.get("event") == "service stopped" for line in lines)
