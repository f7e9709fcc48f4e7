"""The data-analysis template end to end on the real stack (inference, rag, tools, orchestrator,
gateway as processes; real NATS and Postgres): the sample database written by the template's
script under the tools service's SQLite root and registered as the workspace's SQL connection
`shop`, the template installed in one call, published, and asked through the Dify API.

The model is a SCRIPTED OpenAI-compatible server on loopback, registered with the real inference
service for the workspace (it is not a model): the text-to-SQL prompt gets a fixed SQL (a DELETE
when the question asks to delete, one that returns no rows when it says "nothing"), the retry
prompt a good SQL, the chart prompt a fixed Vega-Lite spec. It records the prompts, so the
assertions are on behaviour and structure: the schema reaches the prompt, the answer carries an
SVG chart file, a writing query is refused by the SQL tool before it runs (the data unchanged),
an empty result or an unknown column is asked again exactly once."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import re
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loom.tools.v1 import tools_pb2 as pb
from loom.tools.v1 import tools_pb2_grpc
from loom_common.devstack import infra
from loom_common.testing import service_channel
from loom_gateway.clients.inference import InferenceClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

SCRIPTED = "scripted-sql"
TEMPLATE = Path(__file__).resolve().parents[3] / "templates" / "data-analysis"
GOOD_SQL = ("SELECT strftime('%Y-%m', o.ordered_at) AS month, "
            "round(sum(i.quantity * i.unit_price_cents) / 100.0, 2) AS revenue_eur "
            "FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.status != 'refunded' "
            "GROUP BY month ORDER BY month LIMIT 200")
EMPTY_SQL = "SELECT id, status FROM orders WHERE status = 'lost' LIMIT 200"
WRITE_SQL = "DELETE FROM orders WHERE status = 'refunded'"
UNKNOWN_SQL = "SELECT region, count(*) AS n FROM orders GROUP BY region"  # orders has no region
SPEC = {"mark": "line", "title": "Revenue per month",
        "encoding": {"x": {"field": "month", "type": "ordinal"}, "y": {"field": "revenue_eur", "type": "quantitative"}}}


class ScriptedModel:
    """A scripted OpenAI-compatible chat endpoint (streaming and not), answering by prompt kind."""

    def __init__(self) -> None:
        self.prompts: list[list[dict]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):  # /v1/models
                self._json({"object": "list", "data": [{"id": SCRIPTED, "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                messages = body["messages"]
                scripted.prompts.append(messages)
                text = scripted.answer(messages[0]["content"], messages[-1]["content"].lower())
                if not body.get("stream"):
                    self._json({"id": "x", "object": "chat.completion", "model": SCRIPTED,
                                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                             "finish_reason": "stop"}],
                                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for delta, finish in (({"role": "assistant", "content": text}, None), ({}, "stop")):
                    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                usage = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
                self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())

            def _json(self, obj):
                raw = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.port = infra.free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def answer(system: str, question: str) -> str:
        if system.startswith("You choose a chart"):
            return "```json\n" + json.dumps(SPEC) + "\n```"
        if "Your previous query was" in system:  # asked again after a failed check
            return GOOD_SQL
        if "delete" in question:
            return WRITE_SQL
        if "region" in question:
            return UNKNOWN_SQL
        return f"```sql\n{EMPTY_SQL if 'nothing' in question else GOOD_SQL}\n```"

    def kinds(self) -> list[str]:
        return ["chart" if p[0]["content"].startswith("You choose a chart") else
                "retry" if "Your previous query was" in p[0]["content"] else "sql" for p in self.prompts]

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def scripted_model():
    model = ScriptedModel()
    yield model
    model.close()


def _sample_db(stack) -> Path:
    """The template's sample database, written under the stack's tools service SQLite root."""
    home = Path(next(p for p in stack.procs if p.name == "tools").env["LOOM_HOME"])
    spec = importlib.util.spec_from_file_location("make_sample_db", TEMPLATE / "make_sample_db.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = home / "tools" / "sqlite" / "shop.sqlite"
    mod.build(path)
    return path


async def _setup(stack, workspace_id: str, port: int, db: Path) -> None:
    client = InferenceClient(stack.inference_addr, timeout_s=10.0)
    try:
        await client.register_remote(workspace_id, SCRIPTED, "openai", f"http://127.0.0.1:{port}/v1", None)
    finally:
        await client.close()
    tools_addr = next(p for p in stack.procs if p.name == "tools").env["LOOM_TOOLS_ADDR"]
    async with service_channel(tools_addr) as channel:
        added = await tools_pb2_grpc.ToolsStub(channel).AddConnection(pb.AddConnectionRequest(
            tenant_id=workspace_id, name="shop", driver="sqlite", path=str(db), description="sample shop"),
            timeout=30)
    assert {t.name for t in added.tools} == {"shop.query", "shop.schema"}


def _chart_svg(answer: str) -> bytes:
    found = re.search(r"\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", answer)
    assert found, answer[:500]
    return base64.b64decode(found.group(1))


def test_data_analysis_template_answers_with_a_chart_and_refuses_a_write(stack, scripted_model) -> None:
    db = _sample_db(stack)
    with stack.http() as http:
        ws = http.post(f"{stack.gateway_url}/console/api/workspaces", json={"name": "da-template"},
                       headers=stack.console).json()["id"]
        base = f"{stack.gateway_url}/console/api/workspaces/{ws}"
        listed = http.get(f"{base}/templates", headers=stack.console).json()["data"]
        assert "data-analysis" in {t["id"] for t in listed}
        asyncio.run(_setup(stack, ws, scripted_model.port, db))

        r = http.post(f"{base}/templates/data-analysis/install", json={"model": SCRIPTED},
                      headers=stack.console, timeout=60)
        assert r.status_code == 201, r.text
        app_id = r.json()["app"]["id"]
        http.post(f"{base}/apps/{app_id}/publish", headers=stack.console).raise_for_status()
        key = http.post(f"{base}/apps/{app_id}/api-keys", json={"name": "e2e"}, headers=stack.console).json()["token"]

        def ask(query: str) -> str:
            r = http.post(f"{stack.gateway_url}/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                          timeout=180, json={"inputs": {}, "query": query, "user": "analyst",
                                             "response_mode": "blocking"})
            assert r.status_code == 200, r.text
            return r.json()["answer"]

        # A question: the schema reaches the text-to-SQL prompt, the query runs, the chart comes back.
        answer = ask("What was the revenue per month in 2024?")
        assert scripted_model.kinds() == ["sql", "chart"]
        schema_prompt = scripted_model.prompts[0][0]["content"]
        assert all(t in schema_prompt for t in ("order_items", "unit_price_cents", "customers"))
        assert answer.startswith("12 rows") and GOOD_SQL in answer
        svg = _chart_svg(answer)
        assert svg.startswith(b"<svg") and b"2024-12" in svg
        # The chart prompt saw the real result's columns.
        assert "revenue_eur" in scripted_model.prompts[1][0]["content"]

        # A query that writes: refused by the SQL tool's guard before it reaches the database.
        refused = ask("Please delete the refunded orders.")
        assert refused.startswith("The query was not run") and "sql_refused" in refused, refused
        assert "data:image" not in refused
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            assert conn.execute("SELECT count(*) FROM orders WHERE status = 'refunded'").fetchone()[0] > 0
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 4000

        # An empty result fails the check: asked again exactly once, with the problem, then charted.
        before = len(scripted_model.prompts)
        retried = ask("Show nothing but the lost orders per month.")
        assert scripted_model.kinds()[before:] == ["sql", "retry", "chart"]
        assert "returned no rows" in scripted_model.prompts[before + 1][0]["content"]
        assert _chart_svg(retried).startswith(b"<svg") and GOOD_SQL in retried

        # An unknown column is not a refusal but a mistake: the database's message goes back once.
        before = len(scripted_model.prompts)
        fixed = ask("Orders per region?")
        assert scripted_model.kinds()[before:] == ["sql", "retry", "chart"]
        assert "no such column: region" in scripted_model.prompts[before + 1][0]["content"]
        assert _chart_svg(fixed).startswith(b"<svg")


# Every way the template's graph can end, by the answer node that ends it.
ENDINGS = ("rows from:", "The chart could not be drawn", "The query was not run", "The corrected query was not run",
           "Even after a second try")


def test_data_analysis_template_runs_on_the_bundled_model(stack) -> None:
    """The real bundled model (a 270M base model: it cannot write SQL) drives the same graph:
    structure only, the run ends on one of the template's answers and the data is unchanged."""
    db = _sample_db(stack)
    with stack.http() as http:
        ws = http.post(f"{stack.gateway_url}/console/api/workspaces", json={"name": "da-bundled"},
                       headers=stack.console).json()["id"]
        base = f"{stack.gateway_url}/console/api/workspaces/{ws}"
        tools_addr = next(p for p in stack.procs if p.name == "tools").env["LOOM_TOOLS_ADDR"]

        async def connect() -> None:
            async with service_channel(tools_addr) as channel:
                await tools_pb2_grpc.ToolsStub(channel).AddConnection(pb.AddConnectionRequest(
                    tenant_id=ws, name="shop", driver="sqlite", path=str(db)), timeout=30)

        asyncio.run(connect())
        r = http.post(f"{base}/templates/data-analysis/install", json={"model": "gemma3:270m"},
                      headers=stack.console, timeout=60)
        assert r.status_code == 201, r.text
        app_id = r.json()["app"]["id"]
        # A loaded 2-core box decodes ~10 tokens/s: a short budget per model node (structure only).
        draft = http.get(f"{base}/apps/{app_id}/draft", headers=stack.console).json()["dsl"]
        for node in draft["workflow"]["graph"]["nodes"]:
            if "model" in node["data"]:
                node["data"]["model"]["completion_params"]["max_tokens"] = 24
        http.put(f"{base}/apps/{app_id}/draft", json={"dsl": draft}, headers=stack.console).raise_for_status()
        http.post(f"{base}/apps/{app_id}/publish", headers=stack.console).raise_for_status()
        key = http.post(f"{base}/apps/{app_id}/api-keys", json={"name": "e2e"}, headers=stack.console).json()["token"]
        r = http.post(f"{stack.gateway_url}/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                      timeout=240, json={"inputs": {}, "query": "How many orders were shipped?", "user": "analyst",
                                         "response_mode": "blocking"})
        assert r.status_code == 200, r.text
        answer = r.json()["answer"]
        assert any(e in answer for e in ENDINGS), answer[:500]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 4000
