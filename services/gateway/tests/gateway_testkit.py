"""Helpers and fixtures of the gateway tests (imported by conftest.py):
the gateway in-process (real NATS and Postgres, its own
database per test, HTTP through an ASGI transport), a console session with a workspace, and a
scripted stand-in for the orchestrator for tests that are about the gateway's side of a run.

`ScriptedOrchestrator` is NOT the orchestrator: it takes `runs.requested` and publishes a fixed
script of Dify-named run events. End-to-end tests (test_gateway_e2e*.py) use the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from faststream.nats import NatsBroker, NatsMessage

from loom_common import bus, messaging
from loom_common.db import _with_database
from loom_common.devstack import infra
from loom_common.events import RunCancelRequested, RunEvent, RunFinished, RunRequested
from loom_gateway.app import build
from loom_gateway.settings import GatewaySettings

PASSWORD = "correct horse battery"


@dataclass
class Gw:
    client: httpx.AsyncClient   # in-process (ASGI transport: a response is complete when it returns)
    rt: object
    database_url: str
    base_url: str               # the same app on a real socket, for tests of disconnects


@pytest.fixture
async def gateway(nats_url, database_url, tmp_path, monkeypatch) -> AsyncIterator[Gw]:
    db = _with_database(database_url, f"gw_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("LOOM_HOME", str(tmp_path / "home"))
    # No inference or rag here (nothing listens on port 1), and short deadlines on them: a call that
    # waited for a peer to come up would hold each of the RBAC walk's hundreds of requests.
    settings = GatewaySettings(nats_url=nats_url, database_url=db, ping_interval_s=1.0, blocking_timeout_s=20.0,
                               log_level="WARNING", inference_addr="127.0.0.1:1", rag_addr="127.0.0.1:1",
                               inference_timeout_s=2.0, rag_timeout_s=2.0)
    rt = build(settings)
    await rt.start()
    port = infra.free_port()
    server = uvicorn.Server(uvicorn.Config(rt.http, host="127.0.0.1", port=port, lifespan="off", log_config=None,
                                           access_log=False))
    serving = asyncio.create_task(server.serve())
    transport = httpx.ASGITransport(app=rt.http)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield Gw(client, rt, db, f"http://127.0.0.1:{port}")
    server.should_exit = True
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(serving, 5)
    await rt.stop()


@dataclass
class Console:
    token: str
    workspace_id: str
    account_id: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def ws(self, path: str = "") -> str:
        return f"/console/api/workspaces/{self.workspace_id}{path}"


@pytest.fixture
async def admin(gateway) -> Console:
    r = await gateway.client.post("/console/api/setup", json={"email": "admin@example.com", "name": "Admin",
                                                              "password": PASSWORD, "workspace_name": "A"})
    assert r.status_code == 201, r.text
    body = r.json()
    return Console(body["access_token"], body["workspace"]["id"], body["account_id"])


async def make_app(client: httpx.AsyncClient, admin: Console, mode: str, name: str = "app") -> tuple[str, str]:
    """Create, publish and key an app; returns (app id, app key)."""
    r = await client.post(admin.ws("/apps"), json={"name": name, "mode": mode}, headers=admin.headers)
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    r = await client.post(admin.ws(f"/apps/{app_id}/publish"), headers=admin.headers)
    assert r.status_code == 200, r.text
    r = await client.post(admin.ws(f"/apps/{app_id}/api-keys"), json={"name": "k"}, headers=admin.headers)
    assert r.status_code == 201, r.text
    return app_id, r.json()["token"]


async def republish(client: httpx.AsyncClient, admin: Console, app_id: str, change) -> None:
    """Change the app's draft DSL in place (`change(dsl)`), save it and publish it."""
    draft = (await client.get(admin.ws(f"/apps/{app_id}/draft"), headers=admin.headers)).json()["dsl"]
    change(draft)
    r = await client.put(admin.ws(f"/apps/{app_id}/draft"), json={"dsl": draft}, headers=admin.headers)
    assert r.is_success, r.text
    r = await client.post(admin.ws(f"/apps/{app_id}/publish"), headers=admin.headers)
    assert r.is_success, r.text


class ScriptedOrchestrator:
    """Answers each run request with a fixed event script, then its outcome on runs.finished
    (as the orchestrator does); honours stop requests."""

    def __init__(self, nats_url: str, chunks: int = 3, delay_s: float = 0.0):
        self.broker = NatsBroker(nats_url)
        self.chunks, self.delay_s = chunks, delay_s
        self.requests: list[RunRequested] = []
        self.cancelled: set[str] = set()
        self.tasks: set[asyncio.Task] = set()
        self.kept: dict[str | None, dict] = {}  # conversation variables, per conversation

        @self.broker.subscriber(**bus.ORCHESTRATOR_RUNS.subscriber_kwargs())
        async def take(event: RunRequested, msg: NatsMessage) -> None:
            async with messaging.handling(msg, bus.ORCHESTRATOR_RUNS, self.broker):
                self.requests.append(event)
                task = asyncio.create_task(self._play(event))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

        @self.broker.subscriber(bus.RUN_CANCEL_ALL, no_reply=True)  # as the orchestrator's: no answer to an ack's inbox
        async def stop(event: RunCancelRequested) -> None:
            self.cancelled.add(event.run_id)

    async def _emit(self, run: RunRequested, seq: int, event: str, data: dict) -> None:
        ev = RunEvent(tenant_id=run.tenant_id, run_id=run.run_id, seq=seq, event=event, task_id=run.run_id,
                      data=data)
        await messaging.publish(self.broker, bus.run_events(run.run_id), ev, stream=bus.RUN_EVENTS.name)

    async def _finished(self, run: RunRequested, seq: int, status: str, answer: str = "", **fields) -> None:
        end = RunFinished(event_id=f"{run.run_id}.{status}.{seq}", tenant_id=run.tenant_id, run_id=run.run_id,
                          status=status, answer=answer, last_seq=seq, **fields)
        await messaging.publish(self.broker, bus.RUNS_FINISHED, end, stream=bus.RUN_OUTCOMES.name)

    async def _play(self, run: RunRequested) -> None:
        seq = 0
        said: list[str] = []
        thoughts: list[dict] = []

        async def emit(event: str, data: dict) -> None:
            nonlocal seq
            seq += 1
            said.extend([data["answer"]] if event == "message" else [data["text"]] if event == "text_chunk" else [])
            thoughts.extend([data] if event == "agent_thought" else [])
            await self._emit(run, seq, event, data)

        await emit("workflow_started", {"inputs": run.inputs})
        if run.app_mode == "agent":  # one round, as the agent node reports each
            await emit("agent_thought", {"id": f"{run.run_id}-t1", "message_id": run.run_id, "position": 1,
                                         "thought": "thinking", "tool": "math.eval", "tool_input": '{"a": 1}',
                                         "observation": "1", "created_at": 1})
        slow = "slow" in (run.query or "") or run.inputs.get("slow")
        # "until_stopped": a run that outlasts any stop a loaded machine may be slow to send (60 s).
        steps = 600 if run.inputs.get("until_stopped") else 40 if slow else self.chunks
        slow = slow or run.inputs.get("until_stopped")
        for i in range(steps):
            await asyncio.sleep(0.1 if slow else self.delay_s)
            if run.run_id in self.cancelled:  # as the orchestrator ends a stopped run
                await emit("workflow_finished", {"status": "stopped", "outputs": {}, "error": "stopped by user"})
                if run.app_mode != "workflow":
                    await emit("message_end", {"metadata": {"usage": {"total_tokens": 0}}})
                await self._finished(run, seq, "stopped", "".join(said), error="stopped by user",
                                     agent_thoughts=thoughts,
                                     metadata={"usage": {"total_tokens": 0}} if run.app_mode != "workflow" else None)
                return
            if run.app_mode == "workflow":
                await emit("text_chunk", {"text": f"w{i} "})
            else:
                await emit("message", {"answer": f"tok{i} "})
        if run.app_mode == "workflow":
            await emit("node_finished", {"node_id": "end", "status": "succeeded"})
            await emit("workflow_finished", {"status": "succeeded", "outputs": {"echo": run.inputs},
                                             "total_tokens": 7, "total_steps": 2, "elapsed_time": 0.1})
            await self._finished(run, seq, "succeeded", "".join(said), outputs={"echo": run.inputs},
                                 usage={"total_tokens": 7}, total_steps=2, elapsed_time=0.1)
        else:
            end: dict = {"metadata": {"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}}
            declared = run.graph.get("conversation_variables") or []
            if declared:  # kept per conversation as the orchestrator keeps them; a string takes the query
                kept = ({v["name"]: v.get("value") for v in declared} | self.kept.get(run.conversation_id, {})
                        | (run.conversation_variables or {}))
                kept |= {v["name"]: run.query for v in declared if v.get("value_type", "string") == "string"}
                self.kept[run.conversation_id] = end["conversation_variables"] = kept
            await emit("message_end", end)
            await self._finished(run, seq, "succeeded", "".join(said), usage=end["metadata"]["usage"],
                                 metadata=end["metadata"], conversation_variables=end.get("conversation_variables"),
                                 agent_thoughts=thoughts)

    async def __aenter__(self) -> ScriptedOrchestrator:
        await self.broker.start()
        return self

    async def __aexit__(self, *exc) -> None:
        for task in list(self.tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.broker.stop()


@pytest.fixture
async def orchestrator(nats_url) -> AsyncIterator[ScriptedOrchestrator]:
    async with ScriptedOrchestrator(nats_url) as orch:
        yield orch
