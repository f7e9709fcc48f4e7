"""Console: statistics of a workspace's or an app's runs (the monitoring page)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from loom_gateway.api.deps import gw, require
from loom_gateway.domain.rbac import Perm, Principal
from loom_gateway.store import statistics

router = APIRouter(prefix="/console/api/workspaces/{workspace_id}", tags=["console: monitoring"])


@router.get("/statistics", name="workspace.statistics")
async def workspace_statistics(request: Request, p: Principal = require(Perm.RUNS_READ),
                               app_id: str | None = Query(None, max_length=64, description="one app; all if unset"),
                               days: int = Query(7, ge=1, le=366)) -> dict:
    """Requests, errors, tokens, TTFT and latency percentiles (ms) and a row per UTC day."""
    g = gw(request)
    if app_id:
        await g.apps.get(p.tenant_id, app_id)  # another workspace's app is not found
    return await statistics.statistics(g.reads.pool(p.tenant_id), p.tenant_id, app_id or None, days)
