"""Knowledge features on the real stack (rag, inference with the bundled embedding model, the
orchestrator, NATS, Postgres), in a workspace of their own: dataset metadata fields and
document values (Dify's metadata API), `metadata_filtering_conditions` in retrieve and in the
knowledge-retrieval node returning only matching documents, disabled and archived documents not
retrieved, tags (binding, listing datasets by tag), one segment by id, parent-child chunks
(a child matches, its parent is the record), bad input 400s naming the field, and another
workspace reaching none of it."""

from __future__ import annotations

import time

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

REPORTS = [("Harbour report one: fishing boats and nets at dawn.", "en", 2020),
           ("Harbour report two: ferry boats and cranes at noon.", "fr", 2021),
           ("Harbour report three: sailing boats and buoys at dusk.", "en", 2022)]


def _workspace(stack, name: str) -> tuple[str, dict]:
    ws = httpx.post(f"{stack.gateway_url}/console/api/workspaces", json={"name": name}, headers=stack.console).json()
    key = httpx.post(f"{stack.gateway_url}/console/api/workspaces/{ws['id']}/dataset-api-keys",
                     headers=stack.console).json()["token"]
    return ws["id"], {"Authorization": f"Bearer {key}"}


def _indexed(url: str, h: dict, doc_id: str) -> None:
    status: dict = {}
    for _ in range(240):
        status = httpx.get(f"{url}/documents/{doc_id}/indexing-status", headers=h).json()
        if status["data"][0]["indexing_status"] in ("completed", "error"):
            break
        time.sleep(0.5)
    assert status["data"][0]["indexing_status"] == "completed", status


def _reports(base: str, h: dict, name: str = "Reports") -> tuple[str, list[str], dict]:
    ds = httpx.post(base, json={"name": name}, headers=h, timeout=30).json()["id"]
    url = f"{base}/{ds}"
    docs = []
    for i, (text, _, _) in enumerate(REPORTS):
        created = httpx.post(f"{url}/document/create-by-text", json={"name": f"r{i}.txt", "text": text},
                             headers=h, timeout=30).json()
        docs.append(created["document"]["id"])
    for d in docs:
        _indexed(url, h, d)
    lang = httpx.post(f"{url}/metadata", json={"type": "string", "name": "lang"}, headers=h).json()
    year = httpx.post(f"{url}/metadata", json={"type": "number", "name": "year"}, headers=h).json()
    ops = [{"document_id": d, "metadata_list": [{"id": lang["id"], "name": "lang", "value": lg},
                                                {"id": year["id"], "name": "year", "value": y}]}
           for d, (_, lg, y) in zip(docs, REPORTS, strict=True)]
    r = httpx.post(f"{url}/documents/metadata", json={"operation_data": ops}, headers=h, timeout=60)
    assert r.status_code == 200 and r.json() == {"result": "success"}, r.text
    return ds, docs, {"lang": lang, "year": year}


def _found(url: str, h: dict, conditions: dict | None = None, query: str = "harbour boats") -> set[str]:
    model: dict = {"search_method": "hybrid_search", "top_k": 10}
    if conditions is not None:
        model["metadata_filtering_conditions"] = conditions
    r = httpx.post(f"{url}/retrieve", json={"query": query, "retrieval_model": model}, headers=h, timeout=60)
    assert r.status_code == 200, r.text
    return {rec["segment"]["document_id"] for rec in r.json()["records"]}


def test_metadata_filters_document_status_and_segments(stack) -> None:
    _, h = _workspace(stack, "knowledge-a")
    base = f"{stack.gateway_url}/v1/datasets"
    ds, docs, fields = _reports(base, h)
    url = f"{base}/{ds}"

    listed = httpx.get(f"{url}/metadata", headers=h).json()
    assert listed["built_in_field_enabled"] is False
    assert {(f["name"], f["type"], f["count"]) for f in listed["doc_metadata"]} == {("lang", "string", 3),
                                                                                   ("year", "number", 3)}
    doc = httpx.get(f"{url}/documents/{docs[1]}", headers=h).json()
    assert doc["doc_metadata"] == [{"id": fields["lang"]["id"], "name": "lang", "type": "string", "value": "fr"},
                                   {"id": fields["year"]["id"], "name": "year", "type": "number", "value": 2021}]
    listed_docs = httpx.get(f"{url}/documents", headers=h).json()["data"]
    assert all(len(d["doc_metadata"]) == 2 for d in listed_docs)

    is_en = {"logical_operator": "and", "conditions": [{"name": "lang", "comparison_operator": "is", "value": "en"}]}
    assert _found(url, h) == set(docs)
    assert _found(url, h, is_en) == {docs[0], docs[2]}
    assert _found(url, h, {"logical_operator": "or", "conditions": [
        {"name": "lang", "comparison_operator": "is", "value": "fr"},
        {"name": "year", "comparison_operator": "≥", "value": "2022"}]}) == {docs[1], docs[2]}
    assert _found(url, h, {"conditions": [{"name": "year", "comparison_operator": "<", "value": 2021},
                                          {"name": "lang", "comparison_operator": "is", "value": "en"}]}) == {docs[0]}

    # A renamed field: the documents follow, the old name matches nothing.
    r = httpx.patch(f"{url}/metadata/{fields['lang']['id']}", json={"name": "language"}, headers=h, timeout=60)
    assert r.status_code == 200 and r.json()["name"] == "language"
    assert _found(url, h, {"conditions": [{"name": "language", "comparison_operator": "is", "value": "fr"}]}) \
        == {docs[1]}
    assert _found(url, h, {"conditions": [{"name": "lang", "comparison_operator": "is", "value": "fr"}]}) == set()
    assert httpx.delete(f"{url}/metadata/{fields['year']['id']}", headers=h, timeout=60).status_code == 204
    assert [m["name"] for m in httpx.get(f"{url}/documents/{docs[0]}", headers=h).json()["doc_metadata"]] \
        == ["language"]
    assert httpx.post(f"{url}/metadata/built-in/enable", headers=h, timeout=60).json() == {"result": "success"}
    names = {f["name"] for f in httpx.get(f"{url}/metadata/built-in", headers=h).json()["fields"]}
    assert {"document_name", "upload_date", "source"} <= names
    shown = httpx.get(f"{url}/documents/{docs[2]}", headers=h).json()["doc_metadata"]
    assert {"id": "built-in", "name": "document_name", "type": "string", "value": "r2.txt"} in shown
    assert _found(url, h, {"conditions": [{"name": "document_name", "comparison_operator": "is",
                                           "value": "r2.txt"}]}) == {docs[2]}

    # Disabled and archived documents are not retrieved; un-archiving brings one back.
    r = httpx.patch(f"{url}/documents/status/disable", json={"document_ids": [docs[0]]}, headers=h)
    assert r.status_code == 200 and r.json()["data"][0]["display_status"] == "disabled"
    r = httpx.patch(f"{url}/documents/status/archive", json={"document_ids": [docs[2]]}, headers=h)
    assert r.json()["data"][0]["archived"] is True and r.json()["data"][0]["display_status"] == "archived"
    assert _found(url, h) == {docs[1]}
    httpx.patch(f"{url}/documents/status/un_archive", json={"document_ids": [docs[2]]}, headers=h)
    assert _found(url, h) == {docs[1], docs[2]}
    r = httpx.patch(f"{url}/documents/status/shred", json={"document_ids": [docs[2]]}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "action"

    # One segment by id, only under its own document.
    seg = httpx.get(f"{url}/documents/{docs[1]}/segments", headers=h).json()["data"][0]
    got = httpx.get(f"{url}/documents/{docs[1]}/segments/{seg['id']}", headers=h)
    assert got.status_code == 200 and got.json()["data"]["content"] == seg["content"]
    assert httpx.get(f"{url}/documents/{docs[0]}/segments/{seg['id']}", headers=h).status_code == 404
    r = httpx.get(f"{url}/documents/{docs[1]}/segments/{seg['id']}/child_chunks", headers=h)
    assert r.status_code == 400 and r.json()["field"] == "children_of", r.text  # not a parent-child document

    # Bad input names the field.
    for body, field in [({"type": "string", "name": "Lang"}, "name"), ({"type": "bool", "name": "ok"}, "type"),
                        ({"type": "string", "name": "document_name"}, "name")]:
        r = httpx.post(f"{url}/metadata", json=body, headers=h)
        assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)
    assert httpx.post(f"{url}/metadata", json={"type": "string", "name": "language"}, headers=h).status_code == 409
    r = httpx.post(f"{url}/documents/metadata", json={"operation_data": [
        {"document_id": docs[0], "metadata_list": [{"id": "nope", "value": "x"}]}]}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "operation_data.0.metadata_list.0.id"
    num = httpx.post(f"{url}/metadata", json={"type": "number", "name": "pages"}, headers=h).json()
    r = httpx.post(f"{url}/documents/metadata", json={"operation_data": [
        {"document_id": docs[0], "metadata_list": [{"id": num["id"], "value": "many"}]}]}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "operation_data.0.metadata_list.0.value"
    r = httpx.post(f"{url}/retrieve", json={"query": "boats", "retrieval_model": {"metadata_filtering_conditions": {
        "conditions": [{"name": "pages", "comparison_operator": ">", "value": "many"}]}}}, headers=h)
    assert r.status_code == 400 and r.json()["field"].startswith(
        "retrieval_model.metadata_filtering_conditions.conditions.0"), r.text

    # Another workspace reaches none of it.
    _, other = _workspace(stack, "knowledge-b")
    assert httpx.get(f"{url}/metadata", headers=other).status_code == 404
    assert httpx.post(f"{url}/metadata", json={"type": "string", "name": "x"}, headers=other).status_code == 404
    r = httpx.post(f"{url}/documents/metadata", json={"operation_data": [
        {"document_id": docs[0], "metadata_list": []}]}, headers=other)
    assert r.status_code == 404
    assert httpx.get(f"{url}/documents/{docs[1]}/segments/{seg['id']}", headers=other).status_code == 404
    assert httpx.patch(f"{url}/documents/status/archive", json={"document_ids": [docs[1]]},
                       headers=other).status_code == 404


def test_tags_bind_list_and_stay_in_their_workspace(stack) -> None:
    _, h = _workspace(stack, "knowledge-tags")
    base = f"{stack.gateway_url}/v1/datasets"
    tagged = httpx.post(base, json={"name": "Tagged"}, headers=h, timeout=30).json()["id"]
    plain = httpx.post(base, json={"name": "Plain"}, headers=h, timeout=30).json()["id"]
    tag = httpx.post(f"{base}/tags", json={"name": "finance"}, headers=h).json()
    assert tag["type"] == "knowledge" and tag["binding_count"] == "0"
    assert httpx.post(f"{base}/tags", json={"name": "finance"}, headers=h).status_code == 409
    r = httpx.post(f"{base}/tags/binding", json={"tag_ids": [tag["id"]], "target_id": tagged}, headers=h)
    assert r.status_code == 204, r.text
    assert httpx.get(f"{base}/tags", headers=h).json()[0]["binding_count"] == "1"
    listed = httpx.get(base, params={"tag_ids": [tag["id"]]}, headers=h).json()
    assert [d["id"] for d in listed["data"]] == [tagged] and listed["total"] == 1
    assert listed["data"][0]["tags"] == [{"id": tag["id"], "name": "finance", "type": "knowledge"}]
    assert {d["id"] for d in httpx.get(base, headers=h).json()["data"]} == {tagged, plain}
    assert httpx.get(f"{base}/{tagged}/tags", headers=h).json() == {"data": [{"id": tag["id"], "name": "finance"}],
                                                                    "total": 1}
    renamed = httpx.patch(f"{base}/tags", json={"tag_id": tag["id"], "name": "money"}, headers=h).json()
    assert renamed["name"] == "money" and renamed["binding_count"] == "1"

    # Another workspace: its tags are its own; ours cannot be bound to its datasets nor its to ours.
    _, other = _workspace(stack, "knowledge-tags-b")
    assert httpx.get(f"{base}/tags", headers=other).json() == []
    theirs = httpx.post(f"{base}/tags", json={"name": "mine"}, headers=other).json()
    assert httpx.post(f"{base}/tags/binding", json={"tag_ids": [theirs["id"]], "target_id": tagged},
                      headers=other).status_code == 404
    assert httpx.post(f"{base}/tags/binding", json={"tag_ids": [theirs["id"]], "target_id": plain},
                      headers=h).status_code == 404
    assert httpx.get(base, params={"tag_ids": [tag["id"]]}, headers=other).json()["data"] == []
    assert httpx.request("DELETE", f"{base}/tags", json={"tag_id": tag["id"]}, headers=other).status_code == 404
    r = httpx.post(f"{base}/tags", json={"name": ""}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "name"

    assert httpx.post(f"{base}/tags/unbinding", json={"tag_id": tag["id"], "target_id": tagged},
                      headers=h).status_code == 204
    assert httpx.get(base, params={"tag_ids": [tag["id"]]}, headers=h).json()["data"] == []
    assert httpx.request("DELETE", f"{base}/tags", json={"tag_id": tag["id"]}, headers=h).status_code == 204
    assert httpx.get(f"{base}/tags", headers=h).json() == []


def test_parent_child_retrieval_returns_the_parent(stack) -> None:
    _, h = _workspace(stack, "knowledge-parent-child")
    base = f"{stack.gateway_url}/v1/datasets"
    rule = {"mode": "hierarchical", "rules": {"segmentation": {"separator": "\n\n", "max_tokens": 30,
                                                               "chunk_overlap": 0},
                                              "parent_mode": "paragraph",
                                              "subchunk_segmentation": {"separator": ". ", "max_tokens": 12}}}
    ds = httpx.post(base, json={"name": "Earth", "process_rule": rule}, headers=h, timeout=30).json()
    assert ds["doc_form"] == "hierarchical_model"
    text = ("Glaciers carve valleys over millennia. Moraines mark where the ice stopped.\n\n"
            "Volcanoes vent magma through the crust. Basalt cools into hexagonal columns.")
    doc = httpx.post(f"{base}/{ds['id']}/document/create-by-text", json={"name": "earth.txt", "text": text},
                     headers=h, timeout=30).json()["document"]["id"]
    _indexed(f"{base}/{ds['id']}", h, doc)
    r = httpx.post(f"{base}/{ds['id']}/retrieve", json={"query": "Basalt cools into hexagonal columns",
                                                        "retrieval_model": {"search_method": "semantic_search",
                                                                            "top_k": 1}}, headers=h, timeout=60)
    record = r.json()["records"][0]
    assert record["segment"]["content"] == ("Volcanoes vent magma through the crust. "
                                            "Basalt cools into hexagonal columns.")
    [child] = record["child_chunks"]
    assert "Basalt" in child["content"] and len(child["content"]) < len(record["segment"]["content"])

    # Child chunks (Dify's routes under a segment): the children of the matched child's parent.
    seg = f"{base}/{ds['id']}/documents/{doc}/segments/{child['id']}"
    children = httpx.get(f"{seg}/child_chunks", headers=h).json()
    assert child["id"] in {c["id"] for c in children["data"]} and children["total"] == len(children["data"]) >= 2
    assert all("Glaciers" not in c["content"] for c in children["data"])
    added = httpx.post(f"{seg}/child_chunks", json={"content": "Obsidian is volcanic glass."}, headers=h, timeout=60)
    assert added.status_code == 200, added.text
    new_id = added.json()["data"]["id"]
    r = httpx.post(f"{base}/{ds['id']}/retrieve", json={"query": "Obsidian is volcanic glass",
                                                        "retrieval_model": {"search_method": "semantic_search",
                                                                            "top_k": 1}}, headers=h, timeout=60)
    top = r.json()["records"][0]
    assert top["child_chunks"][0]["id"] == new_id and top["segment"]["content"] == record["segment"]["content"]
    r = httpx.patch(f"{seg}/child_chunks/{new_id}", json={"content": "Pumice floats on water."}, headers=h,
                    timeout=60)
    assert r.status_code == 200 and r.json()["data"]["content"] == "Pumice floats on water."
    glacier = next(c for c in httpx.get(f"{base}/{ds['id']}/documents/{doc}/segments", headers=h).json()["data"]
                   if "Glaciers" in c["content"])
    assert httpx.delete(f"{seg}/child_chunks/{glacier['id']}", headers=h).status_code == 404  # another parent's
    assert httpx.delete(f"{seg}/child_chunks/{new_id}", headers=h).status_code == 204
    r = httpx.post(f"{seg}/child_chunks", json={"content": ""}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "content"


def test_the_knowledge_retrieval_node_applies_metadata_filters(stack) -> None:
    ws, h = _workspace(stack, "knowledge-node")
    base = f"{stack.gateway_url}/v1/datasets"
    ds, docs, _ = _reports(base, h, "Node reports")
    flow = {"nodes": [
        {"id": "start", "data": {"type": "start", "variables": [{"variable": "q", "type": "text-input"}]}},
        {"id": "kr", "data": {"type": "knowledge-retrieval", "query_variable_selector": ["start", "q"],
                              "dataset_ids": [ds], "retrieval_mode": "multiple",
                              "multiple_retrieval_config": {"top_k": 10},
                              "metadata_filtering_mode": "manual",
                              "metadata_filtering_conditions": {"logical_operator": "and", "conditions": [
                                  {"name": "lang", "comparison_operator": "is", "value": "en"}]}}},
        {"id": "end", "data": {"type": "end",
                               "outputs": [{"variable": "result", "value_selector": ["kr", "result"]}]}}],
        "edges": [{"source": "start", "target": "kr"}, {"source": "kr", "target": "end"}]}
    console = f"{stack.gateway_url}/console/api/workspaces/{ws}"
    app_id = httpx.post(f"{console}/apps", json={"name": "filtered", "mode": "workflow"},
                        headers=stack.console).json()["id"]
    draft = httpx.get(f"{console}/apps/{app_id}/draft", headers=stack.console).json()["dsl"]
    draft["workflow"]["graph"] = flow
    httpx.put(f"{console}/apps/{app_id}/draft", json={"dsl": draft}, headers=stack.console).raise_for_status()
    httpx.post(f"{console}/apps/{app_id}/publish", headers=stack.console).raise_for_status()
    key = httpx.post(f"{console}/apps/{app_id}/api-keys", json={"name": "k"}, headers=stack.console).json()["token"]
    r = httpx.post(f"{stack.gateway_url}/v1/workflows/run", json={"inputs": {"q": "harbour boats"}, "user": "u",
                                                                  "response_mode": "blocking"},
                   headers={"Authorization": f"Bearer {key}"}, timeout=120)
    assert r.status_code == 200 and r.json()["data"]["status"] == "succeeded", r.text
    result = r.json()["data"]["outputs"]["result"]
    assert result and {c["metadata"]["document_id"] for c in result} == {docs[0], docs[2]}
    assert all(c["metadata"]["lang"] == "en" for c in result)
