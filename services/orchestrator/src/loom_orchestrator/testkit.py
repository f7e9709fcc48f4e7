"""Graph builders and an in-memory run harness, for the orchestrator's tests and benchmark."""

from __future__ import annotations

import itertools
from typing import Any

from loom_common.events import RunRequested
from loom_orchestrator.engine.context import RunContext, RunLimits, Services
from loom_orchestrator.engine.inmemory import ListSink, MemoryJournal
from loom_orchestrator.workflow import execute_run

_ids = itertools.count(1)


def node(nid: str, type_: str, parent: str | None = None, **data: Any) -> dict[str, Any]:
    return {"id": nid, "data": {"type": type_, **data}, "parent_id": parent}


def edge(source: str, target: str, handle: str = "source") -> dict[str, Any]:
    return {"source": source, "target": target, "source_handle": handle}


def tpl(nid: str, template: str, **refs: list[str]) -> dict[str, Any]:
    return node(nid, "template-transform", template=template,
                variables=[{"variable": k, "value_selector": v} for k, v in refs.items()])


def chain(*ids: str) -> list[dict[str, Any]]:
    return [edge(a, b) for a, b in itertools.pairwise(ids)]


class Harness:
    def __init__(self) -> None:
        self.journal = MemoryJournal()
        self.sink = ListSink()
        self.services = Services()

    async def run(self, graph: dict, inputs: dict | None = None, *, mode: str = "workflow", run_id: str | None = None,
                  query: str | None = None, conversation: dict | None = None, limits: RunLimits | None = None):
        run_id = run_id or f"run-{next(_ids)}"
        req = RunRequested(tenant_id="t1", run_id=run_id, app_id="app", app_mode=mode, graph=graph,
                           inputs=inputs or {}, query=query, conversation_id="c1" if mode != "workflow" else None)
        ctx = RunContext(run_id=run_id, tenant_id="t1", app_id="app", mode=mode,
                         conversation_id=req.conversation_id, message_id=run_id if mode != "workflow" else None,
                         limits=limits or RunLimits())
        return await execute_run(req, ctx, self.services, self.journal, self.sink, conversation=conversation)
