"""Stand-ins for the orchestrator's collaborators, shared by its tests."""

from __future__ import annotations

import asyncio
import collections

from orchestrator_testkit import chain, node

from loom_common.messaging import PublishNotAcknowledged

# start -> http-request -> end: its one tool call is what HeldTools holds.
HELD_GRAPH = {
    "nodes": [
        node("start", "start", variables=[]),
        node("h", "http-request", url="http://127.0.0.1:9/held"),
        node("end", "end", outputs=[{"variable": "code", "value_selector": ["h", "status_code"]}]),
    ],
    "edges": chain("start", "h", "end"),
}


class HeldTools:
    """ToolRunner stand-in: counts executions per run and holds each until its gate opens."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.gates: collections.defaultdict[str, asyncio.Event] = collections.defaultdict(asyncio.Event)

    async def invoke(self, tool, arguments, *, tenant_id, run_id, node_id, timeout_s):
        self.calls[run_id] += 1
        await self.gates[run_id].wait()
        return {"status_code": 200, "body": "ok", "headers": {}}

    async def list_tools(self, tenant_id, timeout_s):
        return []


class UnackedStream:
    """RUN_EVENTS as the run event publisher meets it in a NATS outage (the `unacked_stream`
    fixture puts it in place): the fast path's pipelined `publish_async` is not even written,
    and each publish of the slow path is refused while `refusals` last (None: always), then
    stored by `real` (the true messaging.publish). `sent` holds what the slow path was handed,
    each try, in order: a RunEvent or a RunEventBatch."""

    def __init__(self, refusals: int | None, real) -> None:
        self.refusals, self.real = refusals, real
        self.sent: list = []

    async def publish_async(self, *a, **kw):
        raise ConnectionError("not sent")

    async def publish(self, broker, subject, event, **kw):
        self.sent.append(event)
        if self.refusals is None:
            raise PublishNotAcknowledged("no ack from the stream")
        if self.refusals:
            self.refusals -= 1
            raise PublishNotAcknowledged("no ack from the stream")
        return await self.real(broker, subject, event, **kw)
