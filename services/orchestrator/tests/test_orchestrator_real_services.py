"""Service-backed nodes against the REAL peer processes, started once for this module:
inference (the bundled all-minilm:l6-v2 embeddings), rag (a document ingested through its
real gRPC API and work queue), tools (the code sandbox, the SSRF-guarded HTTP client with the
loopback allowlisted, built-in tools) and the orchestrator, over real NATS and Postgres.

(The same node types through in-process fakes of the servicers: test_orchestrator_nodes.py.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from orchestrator_testkit import BusClient, chain, node, tpl

from loom.rag.v1 import rag_pb2 as rpb
from loom.rag.v1 import rag_pb2_grpc
from loom_common.devstack import infra
from loom_common.testing import ServiceProcess, service_channel

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TENANT = "t-svc"  # the tenant BusClient requests runs for
START = node("start", "start", variables=[{"variable": "n", "type": "number", "required": False}])


class Stack:
    def __init__(self) -> None:
        self.procs: list[ServiceProcess] = []
        self.addrs: dict[str, str] = {}

    def start(self, name: str, env: dict[str, str], base: dict[str, str], home, timeout_s: float = 60) -> None:
        http_port, grpc_port = infra.free_port(), infra.free_port()
        prefix = f"LOOM_{name.upper()}_"
        full = {**base, f"{prefix}HTTP_PORT": str(http_port), **env}
        if name != "orchestrator":
            full[f"{prefix}GRPC_PORT"] = str(grpc_port)
            self.addrs[name] = f"127.0.0.1:{grpc_port}"
        proc = ServiceProcess(name, full, http_port, home / f"{name}.log")
        self.procs.append(proc)
        proc.start(timeout_s)


@pytest.fixture(scope="module")
def stack(nats_url, database_url, tmp_path_factory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("orchestrator-real-services")
    base = {"LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url, "LOOM_HOME": str(home),
            "PYTHONUNBUFFERED": "1"}
    s = Stack()
    try:
        s.start("inference", {"LOOM_INFERENCE_PERFORMANCE__MAX_PARALLEL": "2"}, base, home, timeout_s=120)
        inference = {"LOOM_INFERENCE_ADDR": s.addrs["inference"]}
        # The rag tests share the ingest durable with this process: the same ack_wait.
        s.start("rag", {**inference, "LOOM_RAG_INGEST_ACK_WAIT_S": "4", "LOOM_RAG_EMBED_BATCH_SIZE": "16"},
                base, home)
        s.start("tools", {"LOOM_TOOLS_HTTP_ALLOWLIST": "127.0.0.1", "LOOM_TOOLS_SANDBOX_ALLOW_DEGRADED": "true"},
                base, home)
        s.start("orchestrator", {**inference, "LOOM_RAG_ADDR": s.addrs["rag"], "LOOM_TOOLS_ADDR": s.addrs["tools"]},
                base, home)
        yield s
    finally:
        # The orchestrator first (it calls the others), then the peers side by side.
        for proc in s.procs[3:]:
            proc.stop()
        with concurrent.futures.ThreadPoolExecutor() as pool:
            list(pool.map(ServiceProcess.stop, s.procs[:3]))


async def _ingest(rag_addr: str, texts: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A dataset holding `texts` (name -> text), indexed through rag's real path."""
    async with service_channel(rag_addr) as channel:
        ds_stub = rag_pb2_grpc.DatasetsStub(channel)
        ds = await ds_stub.CreateDataset(rpb.CreateDatasetRequest(tenant_id=TENANT, name=f"kb-{uuid.uuid4().hex[:6]}"),
                                         timeout=30)
        ids = {}
        for name, text in texts.items():
            doc = await ds_stub.CreateDocument(rpb.CreateDocumentRequest(tenant_id=TENANT, dataset_id=ds.id,
                                                                         name=name, text=text), timeout=30)
            ids[name] = doc.id
        deadline = time.monotonic() + 90
        for name, doc_id in ids.items():
            while True:
                doc = await ds_stub.GetDocument(rpb.DocumentRef(tenant_id=TENANT, dataset_id=ds.id,
                                                                document_id=doc_id), timeout=10)
                if doc.indexing_status in ("completed", "error"):
                    assert doc.indexing_status == "completed", (name, doc.error)
                    break
                assert time.monotonic() < deadline, f"{name} still {doc.indexing_status}"
                await asyncio.sleep(0.1)
    return ds.id, ids


async def test_knowledge_retrieval_finds_a_segment_ingested_by_the_real_rag(stack, nats_url) -> None:
    fact = "The lighthouse keeper of Skerryvore counts exactly 4417 gulls every spring."
    dataset_id, docs = await _ingest(stack.addrs["rag"], {
        "gulls.txt": fact,
        "bread.txt": "Sourdough bread needs a starter, flour, water and salt, and a long slow rise.",
    })
    g = {
        "nodes": [
            START,
            node("kr", "knowledge-retrieval", query_variable_selector=["sys", "query"], dataset_ids=[dataset_id],
                 retrieval_mode="multiple", multiple_retrieval_config={"top_k": 1}),
            node("t", "template-transform", template="{% for c in chunks %}{{ c.content }}{% endfor %}",
                 variables=[{"variable": "chunks", "value_selector": ["kr", "result"]}]),
            node("end", "end", outputs=[{"variable": "context", "value_selector": ["t", "output"]},
                                        {"variable": "hits", "value_selector": ["kr", "result"]}]),
        ],
        "edges": chain("start", "kr", "t", "end"),
    }
    async with BusClient(nats_url) as client:
        run_id = await client.request(g, query="How many gulls does the Skerryvore lighthouse keeper count?")
        events = await client.events(run_id, timeout_s=60)
    finished = events[-1].data
    assert finished.status == "succeeded", finished
    assert fact in finished.outputs["context"]
    hit = finished.outputs["hits"][0]
    assert hit["title"] == "gulls.txt"
    assert hit["metadata"]["document_id"] == docs["gulls.txt"] and hit["metadata"]["dataset_id"] == dataset_id
    assert hit["metadata"]["score"] > 0

    # In a chatflow, the answer's message_end cites what was retrieved (Dify's retriever_resources).
    chat = {"nodes": [*g["nodes"][:3], node("ans", "answer", answer="{{#t.output#}}")],
            "edges": chain("start", "kr", "t", "ans")}
    async with BusClient(nats_url) as client:
        run_id = await client.request(chat, app_mode="chatflow", conversation_id=str(uuid.uuid4()),
                                      query="How many gulls does the Skerryvore lighthouse keeper count?")
        events = await client.events(run_id, until="message_end", timeout_s=60)
    [cited] = events[-1].data.metadata.retriever_resources
    assert (cited["position"], cited["document_id"], cited["document_name"]) == (1, docs["gulls.txt"], "gulls.txt")
    assert cited["dataset_id"] == dataset_id and cited["segment_id"] and cited["content"] == fact


class EchoServer:
    """A loopback HTTP server answering every POST with what it received."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen.append({"path": self.path, "header": self.headers.get("X-Doubled"), "body": json.loads(body)})
                out = json.dumps({"path": self.path, "got": json.loads(body)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


async def test_code_http_request_and_tool_nodes_run_in_the_real_tools_service(stack, nats_url) -> None:
    echo = EchoServer()
    g = {
        "nodes": [
            START,
            node("code", "code", code="import math\n\ndef main(n):\n    return {'doubled': n * 2, 'pi': math.pi}",
                 variables=[{"variable": "n", "value_selector": ["start", "n"]}],
                 outputs={"doubled": {"type": "number"}, "pi": {"type": "number"}}),
            node("http", "http-request", method="post",
                 url=f"http://127.0.0.1:{echo.port}/items/{{{{#code.doubled#}}}}",
                 headers="X-Doubled: {{#code.doubled#}}",
                 body={"type": "json", "data": '{"v": {{#code.doubled#}}}'}),
            node("tool", "tool", tool_name="math.eval",
                 tool_parameters={"expression": {"type": "mixed", "value": "{{#code.doubled#}} + 40"}}),
            tpl("sum", "{{r}}", r=["tool", "json", "result"]),
            node("end", "end", outputs=[{"variable": "doubled", "value_selector": ["code", "doubled"]},
                                        {"variable": "status", "value_selector": ["http", "status_code"]},
                                        {"variable": "body", "value_selector": ["http", "body"]},
                                        {"variable": "sum", "value_selector": ["sum", "output"]}]),
        ],
        "edges": chain("start", "code", "http", "tool", "sum", "end"),
    }
    bad = {"nodes": [START, node("code", "code", code="def main():\n    return 1/0", outputs={}),
                     node("end", "end", outputs=[])], "edges": chain("start", "code", "end")}
    async with BusClient(nats_url) as client:
        run_id = await client.request(g, inputs={"n": 1})
        events = await client.events(run_id, timeout_s=60)
        failed = await client.events(await client.request(bad), timeout_s=60)
    out = events[-1].data
    assert out.status == "succeeded", out
    assert out.outputs["doubled"] == 2 and out.outputs["status"] == 200 and out.outputs["sum"] == "42"
    assert json.loads(out.outputs["body"]) == {"path": "/items/2", "got": {"v": 2}}
    assert echo.seen == [{"path": "/items/2", "header": "2", "body": {"v": 2}}]
    # The user's exception comes back as the code node's typed failure, naming the node.
    assert failed[-1].data.status == "failed"
    assert "node 'code' (code) failed" in failed[-1].data.error and "ZeroDivisionError" in failed[-1].data.error
