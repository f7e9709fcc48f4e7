"""llm nodes with `vision` (Dify's files on an LLM node): the run's files read from the shared file
store (a local folder here, keyed by tenant as the gateway writes it); text-like files inlined in
the prompt under per-file and total caps; images sent to the model as gRPC image parts, and a
model that refuses them (inference's INVALID_ARGUMENT naming `messages.<i>.images.<j>`) fails
the node naming the file and the model. The inference side here is a gRPC stand-in that acts as
the real router does (tests/integration covers the real one)."""

from __future__ import annotations

import io

import grpc
import pytest
from orchestrator_testkit import chain, node
from PIL import Image

from loom.inference.v1 import inference_pb2 as ipb
from loom.inference.v1 import inference_pb2_grpc
from loom_common.blobs import LocalBlobStore, file_key
from loom_common.events import RunRequested
from loom_common.runtime import GRPC_EXCLUSIVE_PORT
from loom_orchestrator.clients.files import StoredDocuments
from loom_orchestrator.clients.inference import InferenceClient
from loom_orchestrator.engine.context import RunContext
from loom_orchestrator.nodes import llm_files
from loom_orchestrator.workflow import execute_run

VISION_MODEL = "scripted-vision"
START = node("start", "start", variables=[])


class Inference(inference_pb2_grpc.InferenceServicer):
    """Records requests; refuses images for any model but VISION_MODEL as the real router does."""

    def __init__(self) -> None:
        self.requests: list[ipb.GenerateRequest] = []

    async def Generate(self, request, context):
        self.requests.append(request)
        for i, m in enumerate(request.messages):
            for j, image in enumerate(m.images):
                if not image.data.startswith(b"\x89PNG"):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"messages.{i}.images.{j}: is not a PNG, "
                                        "JPEG, GIF, WebP or BMP image")
            if m.images and request.model != VISION_MODEL:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"messages.{i}.images.0: {request.model} "
                                    "cannot read images (it has no vision projector); send text only")
        yield ipb.GenerateChunk(text="ok", finish_reason=ipb.FINISH_REASON_STOP, model=request.model,
                                usage=ipb.Usage(prompt_tokens=3, completion_tokens=1))


@pytest.fixture
async def inference(harness):
    server = grpc.aio.server(options=GRPC_EXCLUSIVE_PORT)
    inf = Inference()
    inference_pb2_grpc.add_InferenceServicer_to_server(inf, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    harness.services.model = InferenceClient(f"127.0.0.1:{port}")
    yield inf
    await server.stop(0)


@pytest.fixture
async def store(tmp_path, harness):
    s = LocalBlobStore(tmp_path / "files")
    harness.services.documents = StoredDocuments(s)
    return s


def _upload(file_id: str, name: str, ext: str, mime: str, kind: str = "document") -> dict:
    return {"type": kind, "transfer_method": "local_file", "upload_file_id": file_id, "filename": name,
            "extension": ext, "mime_type": mime}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _graph(model: str, selector: list[str] | None = None, enabled: bool = True) -> dict:
    vision = {"enabled": enabled, "configs": {"variable_selector": selector or ["sys", "files"], "detail": "high"}}
    llm = node("llm", "llm", model={"name": model}, vision=vision,
               prompt_template=[{"role": "system", "text": "Answer from the files."},
                                {"role": "user", "text": "What do they say?"}])
    end = node("end", "end", outputs=[{"variable": "text", "value_selector": ["llm", "text"]}])
    return {"nodes": [START, llm, end], "edges": chain("start", "llm", "end")}


async def _run(harness, graph: dict, files: list[dict]):
    req = RunRequested(tenant_id="t1", run_id=f"run-{len(harness.sink.events)}", app_id="app", graph=graph,
                       files=files)
    ctx = RunContext(run_id=req.run_id, tenant_id="t1", app_id="app")
    return await execute_run(req, ctx, harness.services, harness.journal, harness.sink)


async def test_text_files_are_inlined_in_the_user_prompt(harness, store, inference) -> None:
    await store.put(file_key("t1", "f1", "txt"), b"Glucose 180 mg/dL")
    await store.put(file_key("t1", "f2", "csv"), b"test,value\nTSH,2.1\n")
    await store.put(file_key("t1", "f3", "json"), b'{"hba1c": "7.9 %"}')
    files = [_upload("f1", "lab.txt", "txt", "text/plain"), _upload("f2", "lab.csv", "csv", "text/csv"),
             _upload("f3", "lab.json", "json", "application/json")]
    outcome = await _run(harness, _graph("gemma3:270m"), files)
    assert outcome.status == "succeeded", outcome.error
    system, user = inference.requests[-1].messages
    assert system.content == "Answer from the files." and not user.images
    assert user.content.startswith("What do they say?\n\nFile \"lab.txt\":\nGlucose 180 mg/dL")
    assert "TSH; value: 2.1" in user.content and "7.9 %" in user.content
    fin = next(d for d in harness.sink.of("node_finished") if d["node_id"] == "llm")
    assert fin["inputs"]["files"] == ["lab.txt", "lab.csv", "lab.json"]


async def test_inlined_text_is_cut_per_file_and_in_all(harness, store, inference) -> None:
    big = b"x" * (llm_files.MAX_FILE_CHARS + 500)
    names = [f"f{i}" for i in range(5)]
    for n in names:
        await store.put(file_key("t1", n, "txt"), big)
    outcome = await _run(harness, _graph("gemma3:270m"), [_upload(n, f"{n}.txt", "txt", "text/plain") for n in names])
    assert outcome.status == "succeeded", outcome.error
    user = inference.requests[-1].messages[-1].content
    assert f"[... f0.txt cut at {llm_files.MAX_FILE_CHARS} characters]" in user
    assert user.count("x") <= llm_files.MAX_TOTAL_CHARS
    assert f'[file "f4.txt" left out: the files\' text is cut at {llm_files.MAX_TOTAL_CHARS} characters]' in user


async def test_an_image_goes_to_a_vision_model_as_an_image(harness, store, inference) -> None:
    png = _png()
    await store.put(file_key("t1", "img", "png"), png)
    await store.put(file_key("t1", "f1", "md"), b"# Note\n\nsee the scan")
    files = [_upload("img", "scan.png", "png", "image/png", "image"), _upload("f1", "note.md", "md", "text/markdown")]
    outcome = await _run(harness, _graph(VISION_MODEL), files)
    assert outcome.status == "succeeded", outcome.error
    user = inference.requests[-1].messages[-1]
    assert [(i.data, i.mime_type) for i in user.images] == [(png, "image/png")]
    assert "see the scan" in user.content and "scan.png" not in user.content
    fin = next(d for d in harness.sink.of("node_finished") if d["node_id"] == "llm")
    assert fin["process_data"]["prompts"][-1]["files"] == ["scan.png"]


async def test_an_image_refused_by_a_model_without_vision_fails_the_node_naming_file_and_model(
        harness, store, inference) -> None:
    await store.put(file_key("t1", "img", "png"), _png())
    files = [_upload("img", "xray.png", "png", "image/png", "image")]
    outcome = await _run(harness, _graph("gemma3:270m"), files)
    assert outcome.status == "failed"
    assert '"xray.png" cannot be sent to model gemma3:270m' in outcome.error, outcome.error
    assert "'llm' (llm)" in outcome.error


async def test_a_file_called_an_image_that_is_not_one_fails_naming_it(harness, store, inference) -> None:
    await store.put(file_key("t1", "img", "png"), _png())
    await store.put(file_key("t1", "fake", "png"), b"just text, named .png")
    files = [_upload("img", "ok.png", "png", "image/png", "image"), _upload("fake", "fake.png", "png", "image/png")]
    outcome = await _run(harness, _graph(VISION_MODEL), files)
    assert outcome.status == "failed"
    assert f'"fake.png" was refused for model {VISION_MODEL}: ' in outcome.error, outcome.error
    assert "is not a PNG" in outcome.error and "does not read images" not in outcome.error


async def test_vision_off_reads_no_files_and_no_files_is_no_error(harness, store, inference) -> None:
    await store.put(file_key("t1", "img", "png"), _png())
    outcome = await _run(harness, _graph("gemma3:270m", enabled=False),
                         [_upload("img", "xray.png", "png", "image/png", "image")])
    assert outcome.status == "succeeded", outcome.error
    assert not inference.requests[-1].messages[-1].images
    outcome = await _run(harness, _graph("gemma3:270m"), [])
    assert outcome.status == "succeeded", outcome.error


async def test_images_over_the_byte_budget_and_foreign_keys_are_refused(harness, store, inference) -> None:
    await store.put(file_key("t1", "big", "png"), b"\x89PNG\r\n\x1a\n" + b"0" * llm_files.MAX_IMAGE_BYTES)
    outcome = await _run(harness, _graph(VISION_MODEL), [_upload("big", "huge.png", "png", "image/png", "image")])
    assert outcome.status == "failed" and "huge.png" in outcome.error and "bytes" in outcome.error, outcome.error
    outcome = await _run(harness, _graph(VISION_MODEL), [_upload("../t2/x", "x.png", "png", "image/png", "image")])
    assert outcome.status == "failed" and "letters, digits" in outcome.error, outcome.error
    assert not inference.requests  # nothing reached the model


def test_difys_vision_shapes_parse() -> None:
    from loom_common.dsl.ai_nodes import LLMData

    on = LLMData(model={"name": "m"}, vision={"enabled": True, "configs": {"variable_selector": ["start", "photo"],
                                                                           "detail": "low"}})
    assert on.vision.configs.variable_selector == ["start", "photo"] and on.vision.configs.detail == "low"
    assert ("vision.configs.variable_selector", ["start", "photo"]) in on.selectors()
    for off in ({"enabled": False, "configs": {"variable_selector": []}}, None, {"enabled": False}):
        data = LLMData(model={"name": "m"}, vision=off)
        assert not data.vision.enabled and data.vision.configs.variable_selector == ["sys", "files"]
        assert data.selectors() == []
