"""Model- and service-backed node types against in-process gRPC servers implementing the
real inference, rag and tools servicers: the nodes go through the real gRPC adapters.

(The same node types against the real services' processes: test_orchestrator_stack.py and
test_orchestrator_real_services.py.)
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket

import grpc
import pytest
from orchestrator_testkit import chain, edge, node

from loom.inference.v1 import inference_pb2 as ipb
from loom.inference.v1 import inference_pb2_grpc
from loom.rag.v1 import rag_pb2 as rpb
from loom.rag.v1 import rag_pb2_grpc
from loom.tools.v1 import tools_pb2 as tpb
from loom.tools.v1 import tools_pb2_grpc
from loom_common.runtime import GRPC_EXCLUSIVE_PORT
from loom_orchestrator.clients.inference import InferenceClient
from loom_orchestrator.clients.rag import RagClient
from loom_orchestrator.clients.tools import ToolsClient

MODEL = {"name": "gemma3:270m"}
START = node("start", "start", variables=[{"variable": "q", "required": False}])


class FakeInference(inference_pb2_grpc.InferenceServicer):
    """Streams a scripted reply; records every request; notices cancellation."""

    def __init__(self) -> None:
        self.requests: list[ipb.GenerateRequest] = []
        self.replies: list[ipb.GenerateChunk | str] = []
        self.cancelled = asyncio.Event()
        self.slow = False

    async def Generate(self, request, context):
        self.requests.append(request)
        reply = self.replies.pop(0) if self.replies else "hello world"
        try:
            if isinstance(reply, str):
                for piece in reply.split(" "):
                    yield ipb.GenerateChunk(text=piece + " ")
                    await asyncio.sleep(1.0 if self.slow else 0)
                yield ipb.GenerateChunk(
                    finish_reason=ipb.FINISH_REASON_STOP,
                    model="gemma3:270m",
                    usage=ipb.Usage(prompt_tokens=7, completion_tokens=2),
                )
            else:
                yield reply
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


class FakeRag(rag_pb2_grpc.RetrievalServicer):
    async def Retrieve(self, request, context):
        return rpb.RetrieveResponse(
            chunks=[
                rpb.RetrievedChunk(
                    content=f"chunk about {request.query}",
                    score=0.9,
                    document_name="doc.md",
                    dataset_id=request.dataset_ids[0],
                )
            ]
        )


class FakeTools(tools_pb2_grpc.ToolsServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    async def ListTools(self, request, context):
        schema = json.dumps({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}})
        return tpb.ListToolsResponse(
            tools=[tpb.ToolInfo(name="math.add", description="add", parameters_json_schema=schema)]
        )

    async def Invoke(self, request, context):
        args = json.loads(request.arguments_json)
        self.calls.append((request.tool, args))
        if request.tool == "code.python":
            return tpb.InvokeResponse(ok=True, result_json=json.dumps({"doubled": args["inputs"]["n"] * 2}))
        if request.tool == "http.request":
            return tpb.InvokeResponse(
                ok=True, result_json=json.dumps({"status": 200, "headers": {}, "body": {"ok": 1}})
            )
        if request.tool == "math.add":
            return tpb.InvokeResponse(ok=True, result_json=json.dumps(args["a"] + args["b"]))
        return tpb.InvokeResponse(ok=False, error_code="not_found", error_message="no such tool")


# gRPC servers set SO_REUSEPORT by default. Other test sessions on the machine pick ports with
# `free_port()` (bind 0, close) and start services on them seconds later; when the kernel hands
# such a port to this server's bind(0) in between, the service binds it too and the kernel splits
# this test's connections between the two processes: calls fail with UNAVAILABLE or
# UNIMPLEMENTED when they land on the stranger. GRPC_EXCLUSIVE_PORT keeps the port this server's alone.


@pytest.fixture
async def fakes(harness):
    server = grpc.aio.server(options=GRPC_EXCLUSIVE_PORT)
    inf, rag, tools = FakeInference(), FakeRag(), FakeTools()
    inference_pb2_grpc.add_InferenceServicer_to_server(inf, server)
    rag_pb2_grpc.add_RetrievalServicer_to_server(rag, server)
    tools_pb2_grpc.add_ToolsServicer_to_server(tools, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    addr = f"127.0.0.1:{port}"
    harness.port = port
    harness.services.model, harness.services.retriever = InferenceClient(addr), RagClient(addr)
    harness.services.tools = ToolsClient(addr)
    yield inf, rag, tools
    await server.stop(0)


def test_the_fake_servers_port_cannot_be_shared(fakes, harness) -> None:
    """What a second gRPC server (another process) binding the same port would do: refused."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError) as err:
            s.bind(("127.0.0.1", harness.port))
    assert err.value.errno == errno.EADDRINUSE


def end(**outs: list[str]) -> dict:
    return node("end", "end", outputs=[{"variable": k, "value_selector": v} for k, v in outs.items()])


async def test_llm_streams_into_the_answer_and_structured_output(harness, fakes) -> None:
    inf, _, _ = fakes
    g = {
        "nodes": [
            START,
            node(
                "llm",
                "llm",
                model={**MODEL, "completion_params": {"temperature": 0, "max_tokens": 9}},
                prompt_template=[{"role": "system", "text": "Be brief."}, {"role": "user", "text": "{{#sys.query#}}"}],
            ),
            node("ans", "answer", answer="{{#llm.text#}} (done)"),
        ],
        "edges": chain("start", "llm", "ans"),
    }
    out = await harness.run(g, mode="chatflow", query="hi there")
    assert out.answer == "hello world  (done)"
    chunks = [d["answer"] for d in harness.sink.of("message")]
    assert chunks == ["hello ", "world ", " (done)"]  # tokens live, then the rest of the answer
    req = inf.requests[-1]
    assert [(m.role, m.content) for m in req.messages] == [("system", "Be brief."), ("user", "hi there")]
    assert req.sampling.max_tokens == 9 and req.sampling.temperature == 0
    fin = next(d for d in harness.sink.of("node_finished") if d["node_id"] == "llm")
    assert fin["execution_metadata"]["total_tokens"] == 9 and fin["process_data"]["prompts"][1]["text"] == "hi there"
    inf.replies = ['{"city": "Paris"}']
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    g2 = {
        "nodes": [
            START,
            node(
                "llm",
                "llm",
                model=MODEL,
                prompt_template=[{"role": "user", "text": "x"}],
                structured_output_enabled=True,
                structured_output={"schema": schema},
            ),
            end(city=["llm", "structured_output", "city"]),
        ],
        "edges": chain("start", "llm", "end"),
    }
    out = await harness.run(g2)
    assert out.outputs == {"city": "Paris"} and json.loads(inf.requests[-1].json_schema) == schema


async def test_question_classifier_branches_and_parameter_extractor(harness, fakes) -> None:
    inf, _, _ = fakes
    inf.replies = ['{"category_id": "c2"}', '{"name": "Ada", "age": 36}']
    g = {
        "nodes": [
            START,
            node(
                "qc",
                "question-classifier",
                model=MODEL,
                query_variable_selector=["sys", "query"],
                classes=[{"id": "c1", "name": "billing"}, {"id": "c2", "name": "people"}],
            ),
            node(
                "pe",
                "parameter-extractor",
                model=MODEL,
                query=["sys", "query"],
                parameters=[{"name": "name", "type": "string", "required": True}, {"name": "age", "type": "number"}],
            ),
            node("a1", "answer", answer="billing"),
            node("a2", "answer", answer="{{#pe.name#}}/{{#pe.age#}}"),
        ],
        "edges": [edge("start", "qc"), edge("qc", "a1", "c1"), edge("qc", "pe", "c2"), edge("pe", "a2")],
    }
    out = await harness.run(g, mode="chatflow", query="Ada is 36")
    assert out.answer == "Ada/36"
    assert json.loads(inf.requests[0].json_schema)["properties"]["category_id"]["enum"] == ["c1", "c2"]
    assert json.loads(inf.requests[1].json_schema)["required"] == ["name"]


async def test_knowledge_retrieval_feeds_llm_context(harness, fakes) -> None:
    inf, _, _ = fakes
    g = {
        "nodes": [
            START,
            node("kr", "knowledge-retrieval", query_variable_selector=["sys", "query"], dataset_ids=["d1"]),
            node(
                "llm",
                "llm",
                model=MODEL,
                context={"enabled": True, "variable_selector": ["kr", "result"]},
                prompt_template=[
                    {"role": "system", "text": "Use: {{#context#}}"},
                    {"role": "user", "text": "{{#sys.query#}}"},
                ],
            ),
            node("ans", "answer", answer="{{#llm.text#}}"),
        ],
        "edges": chain("start", "kr", "llm", "ans"),
    }
    out = await harness.run(g, mode="chatflow", query="cats")
    assert out.status == "succeeded"
    assert inf.requests[-1].messages[0].content == "Use: chunk about cats"
    # The answer's citations, as Dify's message_end carries them.
    end = next(data for _, event, _, data in harness.sink.events if event == "message_end")
    [cited] = end["metadata"]["retriever_resources"]
    assert cited.pop("score") == pytest.approx(0.9)  # a float32 on the wire
    assert cited == {"position": 1, "dataset_id": "d1", "dataset_name": "", "document_id": "",
                     "document_name": "doc.md", "segment_id": "", "content": "chunk about cats"}


async def test_code_http_and_tool_nodes_go_through_the_tools_service(harness, fakes) -> None:
    _, _, tools = fakes
    g = {
        "nodes": [
            START,
            node(
                "code",
                "code",
                code="def main(n):\n    return {'doubled': n * 2}",
                variables=[{"variable": "n", "value_selector": ["sys", "dialogue_count"]}],
                outputs={"doubled": {"type": "number"}},
            ),
            node(
                "http",
                "http-request",
                method="post",
                url="https://example.com/{{#code.doubled#}}",
                headers="X-A: {{#code.doubled#}}",
                body={"type": "json", "data": '{"v": {{#code.doubled#}}}'},
            ),
            node(
                "tool",
                "tool",
                tool_name="math.add",
                tool_parameters={
                    "a": {"type": "variable", "value": ["code", "doubled"]},
                    "b": {"type": "constant", "value": 40},
                },
            ),
            end(code=["code", "doubled"], status=["http", "status_code"], body=["http", "body"], sum=["tool", "json"]),
        ],
        "edges": chain("start", "code", "http", "tool", "end"),
    }
    out = await harness.run(g)
    assert out.outputs == {"code": 2, "status": 200, "body": '{"ok": 1}', "sum": 42}, out.error
    assert tools.calls[0] == (
        "code.python",
        {"code": "def main(n):\n    return {'doubled': n * 2}", "inputs": {"n": 1}},
    )
    assert tools.calls[1] == (
        "http.request",
        {"url": "https://example.com/2", "method": "POST", "headers": {"X-A": "2"}, "json": {"v": 2}},
    )


async def test_agent_calls_tools_and_emits_thoughts_then_react(harness, fakes) -> None:
    inf, _, tools = fakes
    inf.replies = [
        ipb.GenerateChunk(
            finish_reason=ipb.FINISH_REASON_TOOL_CALLS,
            usage=ipb.Usage(prompt_tokens=5),
            tool_calls=[ipb.ToolCall(id="1", name="math.add", arguments_json='{"a":1,"b":2}')],
        ),
        "it is 3",
    ]
    g = {
        "nodes": [
            START,
            node(
                "ag", "agent", model=MODEL, instruction="You add.", tools=[{"tool_name": "math.add"}], max_iterations=3
            ),
            node("ans", "answer", answer="{{#ag.text#}}"),
        ],
        "edges": chain("start", "ag", "ans"),
    }
    out = await harness.run(g, mode="agent", query="1+2?")
    assert out.answer == "it is 3 " and tools.calls == [("math.add", {"a": 1, "b": 2})]
    thoughts = harness.sink.of("agent_thought")
    assert [t["tool"] for t in thoughts] == ["math.add", ""] and thoughts[0]["observation"] == '{"math.add": "3"}'
    assert [m.role for m in inf.requests[1].messages] == ["system", "user", "assistant", "tool"]
    assert json.loads(inf.requests[0].tools[0].parameters_json_schema)["properties"]["a"] == {"type": "number"}
    inf.replies = [
        '{"thought": "add", "action": "math.add", "action_input": {"a": 2, "b": 2}}',
        '{"thought": "done", "action": "final_answer", "action_input": {"answer": "four"}}',
    ]
    g["nodes"][1]["data"]["strategy"] = "react"
    out = await harness.run(g, mode="agent", query="2+2?")
    assert out.answer == "four" and tools.calls[-1] == ("math.add", {"a": 2, "b": 2})
    assert json.loads(inf.requests[-1].json_schema)["properties"]["action"]["enum"] == ["math.add", "final_answer"]


async def test_an_agent_asks_again_once_when_its_call_is_cut_by_max_tokens(harness, fakes) -> None:
    inf, _, tools = fakes
    # Inference hands back a call cut by max_tokens as no call, no text, finish reason length.
    cut = ipb.GenerateChunk(finish_reason=ipb.FINISH_REASON_LENGTH, usage=ipb.Usage(prompt_tokens=5,
                                                                                      completion_tokens=48))
    call = ipb.GenerateChunk(finish_reason=ipb.FINISH_REASON_TOOL_CALLS, usage=ipb.Usage(prompt_tokens=5),
                             tool_calls=[ipb.ToolCall(id="1", name="math.add", arguments_json='{"a":1,"b":2}')])
    inf.replies = [cut, call, "it is 3"]
    model = {"name": "gemma3:270m", "completion_params": {"max_tokens": 48}}
    g = {
        "nodes": [
            START,
            node("ag", "agent", model=model, tools=[{"tool_name": "math.add"}], tool_choice="required",
                 max_iterations=2),
            node("ans", "answer", answer="{{#ag.text#}}"),
        ],
        "edges": chain("start", "ag", "ans"),
    }
    out = await harness.run(g, mode="agent", query="1+2?")
    assert out.answer == "it is 3 " and tools.calls == [("math.add", {"a": 1, "b": 2})]
    assert [r.sampling.max_tokens for r in inf.requests] == [48, 96, 48]  # the cut round asked with twice
    assert [t["tool"] for t in harness.sink.of("agent_thought")] == ["math.add", ""]  # still two rounds

    inf.replies = [cut, cut]  # cut again: the node fails naming the budget, it does not answer nothing
    out = await harness.run(g, mode="agent", query="1+2?")
    assert out.status == "failed" and "max_tokens=96" in str(out.error), out.error

    # react: a step cut short does not parse; it is asked again the same way.
    g["nodes"][1]["data"].update(strategy="react", model={"name": "gemma3:270m"})
    half = ipb.GenerateChunk(text='{"thought": "add", "act', finish_reason=ipb.FINISH_REASON_LENGTH,
                             usage=ipb.Usage(prompt_tokens=5, completion_tokens=256))
    inf.replies = [half, '{"thought": "done", "action": "final_answer", "action_input": {"answer": "three"}}']
    before = len(inf.requests)
    out = await harness.run(g, mode="agent", query="1+2?")
    assert out.answer == "three" and [r.sampling.max_tokens for r in inf.requests[before:]] == [256, 512]


async def test_cancelling_a_run_cancels_the_generate_call_upstream(harness, fakes) -> None:
    inf, _, _ = fakes
    inf.slow = True
    inf.replies = ["a b c d e f g h"]
    g = {
        "nodes": [
            START,
            node("llm", "llm", model=MODEL, prompt_template=[{"role": "user", "text": "x"}]),
            node("ans", "answer", answer="{{#llm.text#}}"),
        ],
        "edges": chain("start", "llm", "ans"),
    }
    task = asyncio.create_task(harness.run(g, mode="chatflow", query="x"))
    while not harness.sink.of("message"):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.wait_for(inf.cancelled.wait(), 5)
