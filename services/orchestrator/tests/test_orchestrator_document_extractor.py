"""document-extractor: a run's uploaded files read from the shared file store (a local folder
here, keyed by tenant as the gateway writes it) through the bounded parser, into text an LLM
prompt can use; files of another tenant, remote URLs and unreadable files fail the node with
a clear error."""

from __future__ import annotations

import pytest
from orchestrator_testkit import chain, node

from loom_common.blobs import LocalBlobStore, file_key
from loom_common.dsl.dify import import_dify
from loom_common.events import RunRequested
from loom_orchestrator.clients.files import StoredDocuments
from loom_orchestrator.engine.context import RunContext
from loom_orchestrator.workflow import execute_run

START = node("start", "start", variables=[])


def _upload(file_id: str, name: str, ext: str, mime: str) -> dict:
    return {"type": "document", "transfer_method": "local_file", "upload_file_id": file_id, "filename": name,
            "extension": ext, "mime_type": mime}


@pytest.fixture
async def store(tmp_path, harness):
    s = LocalBlobStore(tmp_path / "files")
    harness.services.documents = StoredDocuments(s)
    return s


async def _run(harness, graph: dict, files: list[dict], tenant: str = "t1"):
    req = RunRequested(tenant_id=tenant, run_id=f"run-{len(harness.sink.events)}", app_id="app", graph=graph,
                       files=files)
    ctx = RunContext(run_id=req.run_id, tenant_id=tenant, app_id="app")
    return await execute_run(req, ctx, harness.services, harness.journal, harness.sink)


def _graph(selector: list[str], *, is_array_file: bool, nodes: tuple = ()) -> dict:
    ends = node("end", "end", outputs=[{"variable": "text", "value_selector": ["doc", "text"]},
                                       {"variable": "pages", "value_selector": ["doc", "pages"]}])
    ids = ["start", *(n["id"] for n in nodes), "doc", "end"]
    return {"nodes": [START, *nodes, node("doc", "document-extractor", variable_selector=selector,
                                          is_array_file=is_array_file), ends], "edges": chain(*ids)}


async def test_sys_files_text_reaches_the_outputs_with_pages(harness, store) -> None:
    await store.put(file_key("t1", "f1", "md"), b"# Lab\n\nGlucose **180** mg/dL\n")
    await store.put(file_key("t1", "f2", "csv"), b"test,value\nTSH,2.1\n")
    files = [_upload("f1", "lab.md", "md", "text/markdown"), _upload("f2", "lab.csv", "csv", "text/csv")]
    outcome = await _run(harness, _graph(["sys", "files"], is_array_file=True), files)
    assert outcome.status == "succeeded", outcome.error
    assert "Glucose 180" in outcome.outputs["text"][0] and "TSH; value: 2.1" in outcome.outputs["text"][1]
    assert outcome.outputs["pages"] == [1, 1]


async def test_one_file_picked_by_a_list_operator_gives_one_text(harness, store) -> None:
    await store.put(file_key("t1", "f1", "txt"), b"first")
    await store.put(file_key("t1", "f2", "txt"), b"second")
    files = [_upload("f1", "a.txt", "txt", "text/plain"), _upload("f2", "b.txt", "txt", "text/plain")]
    pick = node("lo", "list-operator", variable=["sys", "files"], order_by={"enabled": True, "key": "name",
                                                                          "value": "desc"})
    graph = _graph(["lo", "first_record"], is_array_file=False, nodes=(pick,))
    outcome = await _run(harness, graph, files)
    assert outcome.outputs == {"text": "second", "pages": 1}, outcome.error


@pytest.mark.parametrize(("files", "message"), [
    ([_upload("f9", "other.txt", "txt", "text/plain")], "no stored file"),  # stored under tenant t2 only
    ([_upload("../t2/f9", "x.txt", "txt", "text/plain")], "letters, digits"),
    ([{"transfer_method": "remote_url", "url": "http://127.0.0.1/x.pdf", "filename": "x.pdf"}], "only uploaded"),
    ([_upload("bad", "broken.pdf", "pdf", "application/pdf")], "broken.pdf: not a readable PDF"),
])
async def test_files_it_cannot_or_may_not_read_fail_the_node_clearly(harness, store, files, message) -> None:
    await store.put(file_key("t2", "f9", "txt"), b"tenant two's secret")
    await store.put(file_key("t1", "bad", "pdf"), b"%PDF-1.4 broken")
    outcome = await _run(harness, _graph(["sys", "files"], is_array_file=True), files)
    assert outcome.status == "failed" and message in outcome.error, outcome.error
    assert "'doc' (document-extractor)" in outcome.error
    assert "secret" not in str(harness.sink.events)


def test_a_dify_document_extractor_imports() -> None:
    export = {"app": {"name": "reader", "mode": "workflow"}, "workflow": {"graph": {"nodes": [
        {"id": "start", "data": {"type": "start", "variables": []}},
        {"id": "doc", "data": {"type": "document-extractor", "title": "Doc", "variable_selector": ["sys", "files"],
                               "is_array_file": True, "selected": False}}],
        "edges": [{"source": "start", "target": "doc"}]}}}
    data = import_dify(export).graph.node("doc").data
    assert data.type == "document-extractor" and data.is_array_file


DIFY_EXPORT = """
version: 0.3.0
kind: app
app: {name: Report reader, mode: workflow}
workflow:
  graph:
    nodes:
      - id: '1700000000001'
        type: custom
        data: {type: start, title: Start, variables: [], selected: false}
      - id: '1700000000002'
        type: custom
        data:
          type: list-operator
          title: Documents only
          variable: [sys, files]
          filter_by:
            enabled: true
            conditions: [{key: extension, comparison_operator: in, value: ['.txt', '.md']}]
          order_by: {enabled: true, key: name, value: asc}
          limit: {enabled: false, size: 10}
          extract_by: {enabled: false, serial: '1'}
      - id: '1700000000003'
        type: custom
        data: {type: document-extractor, title: Text, variable_selector: ['1700000000002', result], is_array_file: true}
      - id: '1700000000004'
        type: custom
        data:
          type: end
          title: End
          outputs: [{variable: text, value_selector: ['1700000000003', text]}]
    edges:
      - {source: '1700000000001', target: '1700000000002', sourceHandle: source, targetHandle: target}
      - {source: '1700000000002', target: '1700000000003', sourceHandle: source, targetHandle: target}
      - {source: '1700000000003', target: '1700000000004', sourceHandle: source, targetHandle: target}
"""


async def test_a_dify_export_with_list_operator_and_document_extractor_imports_and_runs(harness, store) -> None:
    graph = import_dify(DIFY_EXPORT).graph.model_dump(by_alias=True)
    await store.put(file_key("t1", "f1", "txt"), b"Glucose 180 mg/dL")
    await store.put(file_key("t1", "f2", "md"), b"# Note\n\nfasting")
    files = [_upload("f2", "b-note.md", "md", "text/markdown"), _upload("f1", "a-lab.txt", "txt", "text/plain"),
             {"type": "image", "transfer_method": "remote_url", "url": "http://127.0.0.1/x.png", "filename": "x.png",
              "extension": "png"}]
    outcome = await _run(harness, graph, files)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.outputs["text"][0] == "Glucose 180 mg/dL" and "fasting" in outcome.outputs["text"][1]


async def test_parsing_is_capped_per_process(store, monkeypatch) -> None:
    """Several runs reading files at once start at most `max_concurrent` parser children."""
    import asyncio

    from loom_common.documents_bounded import Extracted
    from loom_orchestrator.clients import files as files_module

    live, peak = 0, 0

    async def fake_extract(data, name, mime, limits):
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        await asyncio.sleep(0.05)
        live -= 1
        return Extracted(text=name, pages=1)

    monkeypatch.setattr(files_module, "extract_isolated", fake_extract)
    reader = StoredDocuments(store, max_concurrent=2)
    for i in range(6):
        await store.put(file_key("t1", f"f{i}", "txt"), b"x")
    got = await asyncio.gather(*(reader.read_text("t1", _upload(f"f{i}", f"{i}.txt", "txt", "text/plain"))
                                 for i in range(6)))
    assert [g.text for g in got] == [f"{i}.txt" for i in range(6)] and peak == 2
