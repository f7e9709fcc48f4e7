"""Graph builders, an in-memory run harness, a bus client and a held model, for the
orchestrator's tests, the fault tests of the whole stack and the benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

from faststream.nats import NatsBroker
from orchestrator_inmemory import ListSink, MemoryJournal

from loom_common import bus, messaging
from loom_common.events import RunCancelRequested, RunEvent, RunRequested, read_run_events
from loom_common.ids import new_id
from loom_orchestrator.engine.context import RunContext, RunLimits, Services
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


class BusClient:
    """The gateway's side of the bus, as far as these tests need it."""

    def __init__(self, nats_url: str) -> None:
        self.broker = NatsBroker(nats_url)

    async def __aenter__(self) -> BusClient:
        await self.broker.connect()
        await messaging.ensure_streams(self.broker)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.broker.stop()

    async def request(self, graph: dict, **kw) -> str:
        run_id = new_id()
        kw.setdefault("app_id", "app-svc")
        await messaging.publish(self.broker, bus.RUNS_REQUESTED,
                                RunRequested(tenant_id="t-svc", run_id=run_id, graph=graph, **kw),
                                stream=bus.RUNS.name)
        return run_id

    async def cancel(self, run_id: str) -> None:
        await messaging.publish(self.broker, bus.run_cancel(run_id),
                                RunCancelRequested(tenant_id="t-svc", run_id=run_id), stream=bus.RUN_CONTROL.name)

    async def events(self, run_id: str, *, until: str = "workflow_finished", timeout_s: float = 60) -> list[RunEvent]:
        js = self.broker.connection.jetstream()
        sub = await js.subscribe(bus.run_events(run_id), ordered_consumer=True)
        out: list[RunEvent] = []
        try:
            deadline = time.monotonic() + timeout_s
            while not any(e.event == until for e in out):
                msg = await sub.next_msg(timeout=max(0.1, deadline - time.monotonic()))
                out += read_run_events(msg.data)  # one event, or a batch of them
            out = out[: next(i for i, e in enumerate(out) if e.event == until) + 1]
        finally:
            await sub.unsubscribe()
        return out

    async def all_events(self, run_id: str) -> list[RunEvent]:
        js = self.broker.connection.jetstream()
        sub = await js.subscribe(bus.run_events(run_id), ordered_consumer=True)
        out = []
        try:
            while True:
                msg = await sub.next_msg(timeout=1.0)
                out += read_run_events(msg.data)
        except Exception:
            pass
        finally:
            await sub.unsubscribe()
        return out


# start -> llm (model "fake") -> answer: a chatflow whose only side effect is its model call.
CHAT_GRAPH = {"nodes": [node("start", "start"),
                        node("llm", "llm", model={"name": "fake"}, prompt_template=[{"role": "user", "text": "hi"}]),
                        node("ans", "answer", answer="{{#llm.text#}}")],
              "edges": chain("start", "llm", "ans")}


class HeldModel:
    """An inference service stand-in (gRPC, in the test's process): each Generate call streams
    "call<n> ", then waits for `release` and ends with "done"; each Embed call waits for `release`
    and answers EMBED_DIM-dimensional vectors. `addr` once served."""

    EMBED_DIM = 8

    def __init__(self) -> None:
        self.calls = 0
        self.embeds = 0
        self.release = asyncio.Event()
        self.addr = ""

    async def Embed(self, request, context):
        from loom.inference.v1 import inference_pb2 as ipb

        self.embeds += 1
        await self.release.wait()
        return ipb.EmbedResponse(model=request.model, dimension=self.EMBED_DIM, embeddings=[
            ipb.Embedding(values=[1.0] + [0.0] * (self.EMBED_DIM - 1)) for _ in request.inputs])

    async def Generate(self, request, context):
        from loom.inference.v1 import inference_pb2 as ipb

        self.calls += 1
        yield ipb.GenerateChunk(text=f"call{self.calls} ")
        await self.release.wait()
        yield ipb.GenerateChunk(text="done")
        yield ipb.GenerateChunk(finish_reason=ipb.FINISH_REASON_STOP, model="fake",
                                usage=ipb.Usage(prompt_tokens=1, completion_tokens=2))


@contextlib.asynccontextmanager
async def serve_held_model() -> AsyncIterator[HeldModel]:
    import grpc

    from loom.inference.v1 import inference_pb2_grpc
    from loom_common.runtime import GRPC_EXCLUSIVE_PORT

    model = HeldModel()
    server = grpc.aio.server(options=GRPC_EXCLUSIVE_PORT)
    servicer = type("HeldInference", (inference_pb2_grpc.InferenceServicer,), {"Generate": model.Generate,
                                                                            "Embed": model.Embed})()
    inference_pb2_grpc.add_InferenceServicer_to_server(servicer, server)
    model.addr = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    try:
        yield model
    finally:
        model.release.set()
        await server.stop(0)
