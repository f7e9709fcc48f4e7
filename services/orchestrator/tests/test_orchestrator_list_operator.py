"""list-operator: filter, extract, sort and limit over strings, numbers and files, in the
engine (in-memory harness), from a Dify export, and once through the real orchestrator process."""

from __future__ import annotations

import pytest
from orchestrator_testkit import BusClient, chain, node

from loom_common.dsl.dify import import_dify

START = node("start", "start", variables=[{"variable": "xs", "type": "json_object", "required": False},
                                          {"variable": "kind", "required": False}])
FILES = [
    {"transfer_method": "local_file", "upload_file_id": "f1", "filename": "b-report.pdf", "extension": "pdf",
     "mime_type": "application/pdf", "type": "document", "size": 300},
    {"transfer_method": "remote_url", "url": "https://example.org/scan.png", "filename": "scan.png",
     "extension": "png", "mime_type": "image/png", "type": "image", "size": 100},
    {"transfer_method": "local_file", "upload_file_id": "f3", "filename": "a-notes.txt", "extension": "txt",
     "mime_type": "text/plain", "type": "document", "size": 200},
]


def _graph(variable: list[str], **config) -> dict:
    out = node("end", "end", outputs=[{"variable": k, "value_selector": ["lo", k]}
                                      for k in ("result", "first_record", "last_record")])
    return {"nodes": [START, node("lo", "list-operator", variable=variable, **config), out],
            "edges": chain("start", "lo", "end")}


async def _run(harness, variable, inputs=None, **config):
    # A start input of type json_object carries the list: {"xs": {"v": [...]}} at start.xs.v.
    inputs = {k: ({"v": v} if k == "xs" else v) for k, v in (inputs or {}).items()}
    return await harness.run(_graph([*variable, "v"] if variable == ["start", "xs"] else variable, **config), inputs)


async def test_numbers_filter_sort_and_first_n(harness) -> None:
    outcome = await _run(harness, ["start", "xs"], {"xs": [5, 1, 9, 3, 7]},
                         filter_by={"enabled": True, "conditions": [{"comparison_operator": "≥", "value": "3"}]},
                         order_by={"enabled": True, "value": "desc"}, limit={"enabled": True, "size": 2})
    assert outcome.status == "succeeded", outcome.error
    assert outcome.outputs == {"result": [9, 7], "first_record": 9, "last_record": 7}


async def test_strings_filter_by_a_reference_and_extract_the_nth(harness) -> None:
    outcome = await _run(harness, ["start", "xs"], {"xs": ["glucose 180", "ldl 90", "glucose 95"], "kind": "glu"},
                         filter_by={"enabled": True, "conditions": [
                             {"comparison_operator": "start with", "value": "{{#start.kind#}}"}]},
                         extract_by={"enabled": True, "serial": "2"})
    assert outcome.outputs["result"] == ["glucose 95"]
    assert outcome.outputs["first_record"] == outcome.outputs["last_record"] == "glucose 95"


async def test_files_by_type_extension_size_and_order_by_name(harness) -> None:
    harness_files = {"nodes": [START, node("lo", "list-operator", variable=["sys", "files"],
                                            filter_by={"enabled": True, "conditions": [
                                                {"key": "type", "comparison_operator": "in", "value": ["document"]},
                                                {"key": "size", "comparison_operator": ">", "value": "150"}]},
                                            order_by={"enabled": True, "key": "name", "value": "asc"}),
                               node("end", "end", outputs=[{"variable": "r", "value_selector": ["lo", "result"]}])],
                     "edges": chain("start", "lo", "end")}
    from loom_common.events import RunRequested
    from loom_orchestrator.engine.context import RunContext
    from loom_orchestrator.workflow import execute_run

    req = RunRequested(tenant_id="t1", run_id="r-files", app_id="app", graph=harness_files, files=FILES)
    outcome = await execute_run(req, RunContext(run_id="r-files", tenant_id="t1", app_id="app"),
                                harness.services, harness.journal, harness.sink)
    assert outcome.status == "succeeded", outcome.error
    assert [f["filename"] for f in outcome.outputs["r"]] == ["a-notes.txt", "b-report.pdf"]


async def test_empty_list_gives_empty_result_and_no_records(harness) -> None:
    outcome = await _run(harness, ["start", "xs"], {"xs": []}, limit={"enabled": True, "size": 3})
    assert outcome.outputs == {"result": [], "first_record": None, "last_record": None}


@pytest.mark.parametrize(("inputs", "config", "message"), [
    ({"xs": "not a list"}, {}, "is not a list"),
    ({"xs": [1, "a"]}, {}, "only strings, only numbers or only files"),
    ({"xs": [1, 2]}, {"filter_by": {"enabled": True, "conditions": [{"comparison_operator": "<", "value": "x"}]}},
     "is not a number"),
    ({"xs": [1, 2]}, {"extract_by": {"enabled": True, "serial": "5"}}, "outside 1..2"),
    ({"xs": [{"filename": "a"}]}, {"order_by": {"enabled": True, "key": "colour"}}, "is not a file field"),
])
async def test_bad_lists_and_settings_fail_the_node_with_the_field_named(harness, inputs, config, message) -> None:
    outcome = await _run(harness, ["start", "xs"], inputs, **config)
    assert outcome.status == "failed"
    assert message in outcome.error and "lo" in outcome.error


def test_a_dify_export_with_a_list_operator_imports() -> None:
    export = {"version": "0.3.0", "app": {"name": "lists", "mode": "workflow"}, "workflow": {"graph": {
        "nodes": [
            {"id": "start", "data": {"type": "start", "variables": []}},
            {"id": "lo", "data": {"type": "list-operator", "title": "List", "variable": ["sys", "files"],
                                  "filter_by": {"enabled": True, "conditions": [
                                      {"key": "type", "comparison_operator": "in", "value": ["image"]}]},
                                  "order_by": {"enabled": False, "key": "", "value": "asc"},
                                  "limit": {"enabled": True, "size": 10},
                                  "extract_by": {"enabled": False, "serial": "1"}, "selected": False}},
        ],
        "edges": [{"source": "start", "target": "lo"}]}}}
    graph = import_dify(export).graph
    data = graph.node("lo").data
    assert data.type == "list-operator" and data.limit.size == 10
    assert data.filter_by.conditions[0].value == ["image"]


@pytest.mark.integration
async def test_list_operator_through_the_real_orchestrator(nats_url, database_url, run_service) -> None:
    run_service("orchestrator")
    graph = _graph(["start", "xs", "v"], order_by={"enabled": True, "value": "asc"}, limit={"enabled": True, "size": 2})
    async with BusClient(nats_url) as bus_client:
        run_id = await bus_client.request(graph, inputs={"xs": {"v": ["c", "a", "b"]}})
        events = await bus_client.events(run_id)
    done = [e for e in events if e.event == "workflow_finished"][-1]
    assert done.data.status == "succeeded"
    assert done.data.outputs == {"result": ["a", "b"], "first_record": "a", "last_record": "b"}
    finished = [e for e in events if e.event == "node_finished" and e.data.node_type == "list-operator"]
    assert len(finished) == 1 and finished[0].data.inputs == {"variable": ["c", "a", "b"]}
