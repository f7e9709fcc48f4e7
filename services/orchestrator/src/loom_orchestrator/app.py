"""Composition root of the orchestrator: the runs.requested consumer over Postgres."""

from __future__ import annotations

from loom_common.runtime import ServiceRuntime
from loom_orchestrator import __version__
from loom_orchestrator.handlers import build_router
from loom_orchestrator.settings import OrchestratorSettings
from loom_orchestrator.store import PgRunStore


class _LazyStore:
    """The pool exists only once the runtime started; the router is built before that."""

    def __init__(self, rt: ServiceRuntime) -> None:
        self.rt = rt

    async def record_requested(self, event, trace_id):
        return await PgRunStore(self.rt.pool).record_requested(event, trace_id)


def build(settings: OrchestratorSettings | None = None) -> ServiceRuntime:
    settings = settings or OrchestratorSettings()
    rt = ServiceRuntime("orchestrator", settings, version=__version__, schema="orchestrator",
                        migrations="loom_orchestrator.migrations")
    rt.broker.include_router(build_router(rt.broker, _LazyStore(rt)))
    return rt
