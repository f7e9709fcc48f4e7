"""The workflow editor in real Chromium against the real stack (tests/console/conftest.py): a
chatflow built by real mouse drags from the palette (start → knowledge retrieval → LLM → if-else
→ two answers), configured through the node panels, a validation error on an unconnected node
seen and fixed, the draft debug-run with every node's trace, published, and answered through an
API key made in the console; and the conflict warning when two editors save the same draft."""

from __future__ import annotations

import uuid

import httpx
import pytest
from console_harness import ARTIFACTS, sign_in
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.integration]

WIDE = {"width": 1600, "height": 1000}  # room for palette, canvas and panel side by side


def _center(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    assert box is not None, locator
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _drag(page, source, to: tuple[float, float]) -> None:
    """A real mouse drag: press on `source`, move in steps, release at `to`."""
    x, y = _center(source)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(*to, steps=12)
    page.mouse.up()


def _connect(page, source: str, handle: str, target: str) -> None:
    _drag(page, page.get_by_test_id(f"handle-{source}-{handle}"), _center(page.get_by_test_id(f"target-{target}")))


def _panel(page, node_id: str):
    page.get_by_test_id(f"node-{node_id}").click(position={"x": 60, "y": 12})
    panel = page.get_by_test_id(f"panel-{node_id}")
    expect(panel).to_be_visible()
    return panel


def _new_app(console_stack, admin, name: str) -> dict:
    r = console_stack.api("POST", f"/console/api/workspaces/{admin.workspace_id}/apps", admin.token,
                          json={"name": name, "mode": "chatflow"})
    assert r.status_code == 201, r.text
    return r.json()


def test_chatflow_built_by_mouse_runs_traced_publishes_and_answers_an_api_key(signed_in, console_stack, admin) -> None:
    page = signed_in
    page.set_viewport_size(WIDE)
    ws = admin.workspace_id
    app = _new_app(console_stack, admin, "Handbook bot")
    draft = console_stack.api("GET", f"/console/api/workspaces/{ws}/apps/{app['id']}/draft", admin.token).json()["dsl"]
    model = next(n["data"]["model"]["name"] for n in draft["workflow"]["graph"]["nodes"] if n["data"]["type"] == "llm")
    kb = f"handbook-{uuid.uuid4().hex[:6]}"
    r = console_stack.api("POST", "/v1/datasets", admin.token, headers={"X-Workspace-Id": ws}, json={"name": kb})
    assert r.status_code == 200, r.text

    page.goto(f"{console_stack.url}/w/{ws}/apps/{app['id']}/editor")
    expect(page.get_by_test_id("editor")).to_be_visible()
    # Keep only the start node of the new chatflow: click each default node, press Delete.
    for node_id in ("llm", "answer"):
        page.get_by_test_id(f"node-{node_id}").click()
        page.keyboard.press("Delete")
        expect(page.get_by_test_id(f"node-{node_id}")).to_have_count(0)

    # Drag each node from the palette onto the canvas.
    canvas = page.get_by_test_id("canvas").bounding_box()
    spots = [("knowledge-retrieval", 0.42, 0.18), ("llm", 0.72, 0.18), ("if-else", 0.15, 0.72),
             ("answer", 0.45, 0.72), ("answer", 0.75, 0.72)]
    for node_type, fx, fy in spots:
        _drag(page, page.get_by_test_id(f"palette-{node_type}"),
              (canvas["x"] + canvas["width"] * fx, canvas["y"] + canvas["height"] * fy))
    for node_id in ("knowledge_retrieval", "llm", "if_else", "answer", "answer_2"):
        expect(page.get_by_test_id(f"node-{node_id}")).to_be_visible()
    # Undo takes the last drop back, redo brings it again.
    page.get_by_test_id("canvas").click(position={"x": 10, "y": 10})
    page.keyboard.press("Control+z")
    expect(page.get_by_test_id("node-answer_2")).to_have_count(0)
    page.keyboard.press("Control+Shift+z")
    expect(page.get_by_test_id("node-answer_2")).to_be_visible()

    # Wire them handle to handle; the if-else has one handle per case (IF = "true") and ELSE.
    _connect(page, "start", "source", "knowledge_retrieval")
    _connect(page, "knowledge_retrieval", "source", "llm")
    _connect(page, "llm", "source", "if_else")
    _connect(page, "if_else", "true", "answer")

    # Configure through the panels.
    kr = _panel(page, "knowledge_retrieval")
    expect(kr.get_by_test_id("query-var")).to_have_value("sys.query")
    kr.get_by_label(kb).check()
    llm = _panel(page, "llm")
    llm.get_by_test_id("model-name").fill(model)
    llm.get_by_label("Max tokens").fill("12")  # the tests assert structure, not prose
    llm.get_by_label("Use retrieved context").check()
    llm.get_by_test_id("context-var").select_option("knowledge_retrieval.result")
    llm.get_by_test_id("prompt-0").fill("Answer from this context: {{#context#}}")
    llm.get_by_test_id("prompt-1-insert").select_option("sys.query")
    expect(llm.get_by_test_id("prompt-1")).to_have_value("{{#sys.query#}}")
    offered = llm.get_by_test_id("prompt-1-insert").locator("option").all_inner_texts()
    assert any("Knowledge retrieval · result" in o for o in offered), offered
    assert not any(o.startswith(("If / else", "Answer")) for o in offered), offered  # only upstream variables
    branch = _panel(page, "if_else")
    branch.get_by_role("button", name="+ Condition").click()
    branch.get_by_test_id("case-0-var-0").select_option("llm.text")
    branch.get_by_test_id("case-0-op-0").select_option("not empty")
    _panel(page, "answer").get_by_test_id("answer-text-insert").select_option("llm.text")
    _panel(page, "answer_2").get_by_test_id("answer-text").fill("I could not find an answer.")

    # The ELSE answer is not connected yet: its node says so before any save or publish.
    problem = page.get_by_test_id("problem-answer_2")
    expect(problem).to_contain_text("not connected")
    expect(page.get_by_test_id("node-answer_2")).to_have_attribute("data-invalid", "true")
    page.screenshot(path=str(ARTIFACTS / "editor-unconnected-node.png"))
    page.get_by_test_id("publish").click()
    expect(page.get_by_test_id("notice")).to_contain_text("Fix 1 problem(s) before publishing")
    _connect(page, "if_else", "false", "answer_2")
    expect(problem).to_have_count(0)
    expect(page.get_by_test_id("problem-count")).to_have_count(0)
    page.get_by_test_id("auto-layout").click()
    expect(page.get_by_test_id("save-state")).to_have_attribute("data-state", "saved", timeout=15_000)

    # The autosaved draft is the same document the API serves.
    graph = console_stack.api("GET", f"/console/api/workspaces/{ws}/apps/{app['id']}/draft",
                              admin.token).json()["dsl"]["workflow"]["graph"]
    edges = {(e["source"], e.get("source_handle", "source"), e["target"]) for e in graph["edges"]}
    assert edges == {("start", "source", "knowledge_retrieval"), ("knowledge_retrieval", "source", "llm"),
                     ("llm", "source", "if_else"), ("if_else", "true", "answer"), ("if_else", "false", "answer_2")}
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["knowledge_retrieval"]["data"]["dataset_ids"] == [r.json()["id"]]
    assert nodes["llm"]["data"]["context"] == {"enabled": True, "variable_selector": ["knowledge_retrieval", "result"]}
    assert all(n.get("position") for n in graph["nodes"])

    # Debug-run the draft in the chat preview: each node lights up and shows its trace.
    page.get_by_test_id("debug").click()
    page.get_by_test_id("chat-input").fill("What does the handbook say about leave?")
    page.get_by_test_id("chat-send").click()
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=180_000)
    ran = page.eval_on_selector_all("[data-testid^=trace-row-]",
                                    "els => els.map(e => [e.dataset.testid, e.dataset.status])")
    ran = {k.removeprefix("trace-row-"): v for k, v in ran}
    assert {"start", "knowledge_retrieval", "llm", "if_else"} <= set(ran), ran
    assert len({"answer", "answer_2"} & set(ran)) == 1, ran  # exactly one branch ran
    assert set(ran.values()) == {"succeeded"}, ran
    for node_id in ran:
        expect(page.get_by_test_id(f"node-{node_id}")).to_have_attribute("data-status", "succeeded")
    page.get_by_test_id("trace-row-llm").locator("summary").click()
    expect(page.get_by_test_id("trace-llm")).to_contain_text("tokens")
    page.screenshot(path=str(ARTIFACTS / "editor-debug-run.png"))

    # Publish from the editor, then a key from the API access tab answers /v1/chat-messages.
    page.get_by_test_id("publish").click()
    expect(page.get_by_test_id("notice")).to_contain_text("Published version 1")
    expect(page.get_by_test_id("published-version")).to_have_text("published v1")  # the app's header follows
    page.get_by_test_id("versions").click()
    expect(page.get_by_role("dialog", name="Published versions")).to_contain_text("v1 ·")
    page.get_by_test_id("versions").click()
    page.get_by_role("tab", name="API access").click()
    page.get_by_label("Key name").fill("editor test")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-key-token").inner_text()
    r = httpx.post(f"{console_stack.url}/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                   json={"inputs": {}, "query": "Any leave policy?", "response_mode": "blocking", "user": "tester"},
                   timeout=180)
    assert r.status_code == 200, r.text
    assert r.json()["event"] == "message" and isinstance(r.json()["answer"], str)

    # That API run's trace re-opens in the editor's debug panel from the app's past runs.
    page.get_by_role("tab", name="Editor").click()
    page.get_by_test_id("debug").click()
    expect(page.get_by_test_id("trace-list").locator("li")).to_have_count(0)
    page.get_by_test_id("debug-panel").get_by_role("button", name="Load").click()
    page.get_by_test_id("debug-panel").get_by_role("button", name="service-api").first.click()
    expect(page.get_by_test_id("trace-row-llm")).to_have_attribute("data-status", "succeeded")
    expect(page.get_by_test_id("trace-row-knowledge_retrieval")).to_be_visible()


def test_second_editor_saving_the_same_draft_gets_a_conflict_warning(signed_in, browser, console_stack, admin) -> None:
    first = signed_in
    ws = admin.workspace_id
    app = _new_app(console_stack, admin, f"Shared {uuid.uuid4().hex[:4]}")
    url = f"{console_stack.url}/w/{ws}/apps/{app['id']}/editor"
    first.goto(url)
    expect(first.get_by_test_id("editor")).to_be_visible()
    # A second editor (another browser context, the same member) opens the same draft.
    other = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        second = other.new_page()
        second.goto(console_stack.url + "/login")
        session = first.evaluate("localStorage.getItem('loom.session')")
        second.evaluate("s => localStorage.setItem('loom.session', s)", session)
        second.goto(url)
        expect(second.get_by_test_id("editor")).to_be_visible()

        _panel(first, "llm").get_by_label("Node title").fill("Writer")
        expect(first.get_by_test_id("save-state")).to_have_attribute("data-state", "saved", timeout=15_000)
        _panel(second, "answer").get_by_label("Node title").fill("Reply")
        expect(second.get_by_test_id("conflict")).to_be_visible(timeout=15_000)
        second.screenshot(path=str(ARTIFACTS / "editor-conflict.png"))
        stored = console_stack.api("GET", f"/console/api/workspaces/{ws}/apps/{app['id']}/draft", admin.token).json()
        titles = {n["id"]: n["data"]["title"] for n in stored["dsl"]["workflow"]["graph"]["nodes"]}
        assert titles["llm"] == "Writer" and titles["answer"] == "Answer"  # the first save was not overwritten

        # "Load theirs" takes the first editor's draft; the next edit saves cleanly.
        second.get_by_role("button", name="Load theirs").click()
        expect(second.get_by_test_id("conflict")).to_have_count(0)
        expect(second.get_by_test_id("node-llm")).to_contain_text("Writer")
        _panel(second, "answer").get_by_label("Node title").fill("Reply")
        expect(second.get_by_test_id("save-state")).to_have_attribute("data-state", "saved", timeout=15_000)
        stored = console_stack.api("GET", f"/console/api/workspaces/{ws}/apps/{app['id']}/draft", admin.token).json()
        titles = {n["id"]: n["data"]["title"] for n in stored["dsl"]["workflow"]["graph"]["nodes"]}
        assert titles == {"start": "Start", "llm": "Writer", "answer": "Reply"}
    finally:
        other.close()


def test_editor_shows_the_gateways_error_on_the_node_it_names(signed_in, console_stack, admin) -> None:
    """A draft the gateway refuses is not saved, and the gateway's problem (one the editor does
    not check itself: a timeout over the DSL's 3600 s) is shown on the node and field it names;
    a reload offers the refused changes back."""
    page = signed_in
    ws = admin.workspace_id
    app = _new_app(console_stack, admin, f"Refused {uuid.uuid4().hex[:4]}")
    page.goto(f"{console_stack.url}/w/{ws}/apps/{app['id']}/editor")
    expect(page.get_by_test_id("editor")).to_be_visible()
    llm = _panel(page, "llm")
    llm.get_by_label("Timeout (s)").fill("5000")
    expect(page.get_by_test_id("save-state")).to_have_attribute("data-state", "invalid", timeout=15_000)
    expect(page.get_by_test_id("node-llm")).to_have_attribute("data-invalid", "true")
    expect(page.get_by_test_id("problem-llm")).to_contain_text("3600")
    expect(llm.get_by_role("alert").filter(has_text="3600")).to_be_visible()  # under the field itself
    # Nothing is lost on a reload: the browser kept the refused draft and offers it back.
    page.reload()
    page.get_by_test_id("stashed").get_by_role("button", name="Restore them").click()
    expect(page.get_by_test_id("problem-llm")).to_contain_text("3600")
    llm = _panel(page, "llm")
    expect(llm.get_by_label("Timeout (s)")).to_have_value("5000")
    llm.get_by_label("Timeout (s)").fill("60")
    expect(page.get_by_test_id("save-state")).to_have_attribute("data-state", "saved", timeout=15_000)
    expect(page.get_by_test_id("node-llm")).to_have_attribute("data-invalid", "false")


def test_normal_member_gets_a_read_only_editor(page, console_stack, admin) -> None:
    """A `normal` member sees the graph and each node's settings, but no palette, no publish or
    run, nothing to edit; and the API refuses their draft save anyway."""
    ws = admin.workspace_id
    app = _new_app(console_stack, admin, f"Read only {uuid.uuid4().hex[:4]}")
    email = f"reader-{uuid.uuid4().hex[:6]}@example.com"
    invite = console_stack.api("POST", f"/console/api/workspaces/{ws}/invitations", admin.token,
                               json={"email": email, "role": "normal"})
    assert invite.status_code in (200, 201), invite.text
    accepted = console_stack.api("POST", "/console/api/invitations/accept", json={
        "token": invite.json()["token"], "name": "Reader", "password": "long enough pw"})
    assert accepted.status_code in (200, 201), accepted.text
    sign_in(page, console_stack.url, email, "long enough pw")
    page.goto(f"{console_stack.url}/w/{ws}/apps/{app['id']}/editor")
    expect(page.get_by_test_id("read-only")).to_be_visible()
    expect(page.get_by_test_id("palette-llm")).to_have_count(0)
    for control in ("publish", "debug", "undo", "auto-layout"):
        expect(page.get_by_test_id(control)).to_have_count(0)
    panel = _panel(page, "llm")
    expect(panel.get_by_test_id("model-name")).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "editor-read-only.png"))
    login = console_stack.api("POST", "/console/api/login", json={"email": email, "password": "long enough pw"})
    reader = login.json()["access_token"]
    path = f"/console/api/workspaces/{ws}/apps/{app['id']}/draft"
    refused = console_stack.api("PUT", path, reader, json=console_stack.api("GET", path, reader).json())
    assert refused.status_code == 403, refused.text


def test_nodes_dropped_into_an_iteration_run_inside_it_and_leave_with_it(signed_in, console_stack, admin) -> None:
    """Iteration as a container: a node dropped on it becomes its child (parent_id in the saved
    DSL), wired from the iteration's start; copy/paste copies it with its children; deleting it
    deletes them; undo brings them back."""
    page = signed_in
    page.set_viewport_size(WIDE)
    ws = admin.workspace_id
    r = console_stack.api("POST", f"/console/api/workspaces/{ws}/apps", admin.token,
                          json={"name": f"Loops {uuid.uuid4().hex[:4]}", "mode": "workflow"})
    app = r.json()
    page.goto(f"{console_stack.url}/w/{ws}/apps/{app['id']}/editor")
    expect(page.get_by_test_id("editor")).to_be_visible()
    canvas = page.get_by_test_id("canvas").bounding_box()
    _drag(page, page.get_by_test_id("palette-iteration"), (canvas["x"] + 60, canvas["y"] + canvas["height"] * 0.62))
    box = page.get_by_test_id("node-iteration").bounding_box()
    _drag(page, page.get_by_test_id("palette-code"), (box["x"] + box["width"] - 20, box["y"] + box["height"] / 2))
    _connect(page, "iteration_start", "source", "code")
    _connect(page, "start", "source", "iteration")
    panel = _panel(page, "iteration")
    panel.get_by_label("List variable").select_option("sys.files")
    panel.get_by_label("Output variable").select_option("code.result")
    expect(page.get_by_test_id("save-state")).to_have_attribute("data-state", "saved", timeout=15_000)
    graph = console_stack.api("GET", f"/console/api/workspaces/{ws}/apps/{app['id']}/draft",
                              admin.token).json()["dsl"]["workflow"]["graph"]
    parents = {n["id"]: n.get("parent_id") for n in graph["nodes"]}
    assert parents == {"start": None, "end": None, "iteration": None, "iteration_start": "iteration",
                       "code": "iteration"}, parents
    assert {"source": "iteration_start", "target": "code"}.items() <= next(
        e for e in graph["edges"] if e["target"] == "code").items()

    page.get_by_test_id("node-iteration").click(position={"x": 80, "y": 10})
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    expect(page.get_by_test_id("node-code_2")).to_be_visible()
    page.keyboard.press("Control+z")
    expect(page.get_by_test_id("node-code_2")).to_have_count(0)

    page.get_by_test_id("node-iteration").click(position={"x": 80, "y": 10})
    page.keyboard.press("Delete")
    for node_id in ("iteration", "iteration_start", "code"):
        expect(page.get_by_test_id(f"node-{node_id}")).to_have_count(0)
    page.keyboard.press("Control+z")
    expect(page.get_by_test_id("node-code")).to_be_visible()
    expect(page.get_by_test_id("save-state")).to_have_attribute("data-state", "saved", timeout=15_000)


def _box(page, test_id: str) -> dict:
    box = page.get_by_test_id(test_id).bounding_box()
    assert box is not None, test_id
    return box


def _saved_graph(page, console_stack, admin, app_id: str) -> dict:
    expect(page.get_by_test_id("save-state")).to_have_attribute("data-state", "saved", timeout=15_000)
    return console_stack.api("GET", f"/console/api/workspaces/{admin.workspace_id}/apps/{app_id}/draft",
                             admin.token).json()["dsl"]["workflow"]["graph"]


def test_a_node_on_the_canvas_dragged_into_an_iteration_becomes_its_child_and_dragged_out_is_top_level(
        signed_in, console_stack, admin) -> None:
    """Containers take nodes already on the canvas: a code node dragged by the mouse onto an
    iteration becomes its child (parent_id and a position relative to it in the saved DSL, the
    edges that crossed the border dropped), and dragged out again is top-level."""
    page = signed_in
    page.set_viewport_size(WIDE)
    ws = admin.workspace_id
    app = console_stack.api("POST", f"/console/api/workspaces/{ws}/apps", admin.token,
                            json={"name": f"Containers {uuid.uuid4().hex[:4]}", "mode": "workflow"}).json()
    path = f"/console/api/workspaces/{ws}/apps/{app['id']}/draft"
    dsl = console_stack.api("GET", path, admin.token).json()["dsl"]
    code = {"type": "code", "title": "Outer", "code": "def main():\n    return {'result': 1}\n",
            "outputs": {"result": {"type": "number"}}, "variables": []}
    dsl["workflow"]["graph"] = {
        "version": "1", "conversation_variables": [], "environment_variables": [],
        "nodes": [
            {"id": "start", "data": {"type": "start", "title": "Start", "variables": []}, "position": {"x": 0, "y": 0}},
            {"id": "it", "data": {"type": "iteration", "title": "Each file", "start_node_id": "it_start",
                                  "iterator_selector": ["sys", "files"], "output_selector": ["inner", "result"]},
             "position": {"x": 320, "y": 0}},
            {"id": "it_start", "data": {"type": "iteration-start", "title": ""}, "parent_id": "it",
             "position": {"x": 24, "y": 56}},
            {"id": "inner", "data": {**code, "title": "Inner"}, "parent_id": "it", "position": {"x": 24, "y": 140}},
            {"id": "c", "data": code, "position": {"x": 0, "y": 320}},
            {"id": "end", "data": {"type": "end", "title": "End", "outputs": []}, "position": {"x": 900, "y": 0}},
        ],
        "edges": [{"id": "e1", "source": "start", "target": "it"}, {"id": "e2", "source": "it", "target": "end"},
                  {"id": "e3", "source": "start", "target": "c"},
                  {"id": "e4", "source": "it_start", "target": "inner"}],
    }
    r = console_stack.api("PUT", path, admin.token, json={"dsl": dsl})
    assert r.status_code == 200, r.text
    page.goto(f"{console_stack.url}/w/{ws}/apps/{app['id']}/editor")
    expect(page.get_by_test_id("node-c")).to_be_visible()

    # Into the iteration: press on the node's title bar, release over the container's empty right part.
    node, it = _box(page, "node-c"), _box(page, "node-it")
    grab = (node["x"] + 40, node["y"] + 10)
    page.mouse.move(*grab)
    page.mouse.down()
    page.mouse.move(it["x"] + it["width"] * 0.55 + 40, it["y"] + it["height"] * 0.45 + 10, steps=15)
    page.mouse.up()
    graph = _saved_graph(page, console_stack, admin, app["id"])
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["c"].get("parent_id") == "it", nodes["c"]
    inner = nodes["c"]["position"]  # relative to the iteration, inside it
    assert 0 < inner["x"] < 600 and 0 < inner["y"] < 300, inner
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert edges == {("start", "it"), ("it", "end"), ("it_start", "inner")}, edges  # start -> c crossed the border
    node, it = _box(page, "node-c"), _box(page, "node-it")  # drawn inside the container
    assert it["x"] < node["x"] and node["x"] + node["width"] <= it["x"] + it["width"] + 1, (node, it)
    assert it["y"] < node["y"] and node["y"] + node["height"] <= it["y"] + it["height"] + 1, (node, it)
    page.screenshot(path=str(ARTIFACTS / "editor-node-dragged-into-iteration.png"))

    # Out again: released below the iteration, it is top-level (no parent_id), where it was dropped.
    # (Pressed where the curve of it_start -> inner passes under it: children are drawn above the
    # container's edges.)
    page.mouse.move(node["x"] + 40, node["y"] + 10)
    page.mouse.down()
    page.mouse.move(it["x"] + 40, it["y"] + it["height"] + 120, steps=15)
    page.mouse.up()
    graph = _saved_graph(page, console_stack, admin, app["id"])
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert "parent_id" not in nodes["c"], nodes["c"]
    assert nodes["c"]["position"]["y"] > 200, nodes["c"]  # a canvas position now, below the container
    node, it = _box(page, "node-c"), _box(page, "node-it")
    assert node["y"] > it["y"] + it["height"], (node, it)
    # Undo puts it back inside the iteration.
    page.get_by_test_id("canvas").click(position={"x": 10, "y": 10})
    page.keyboard.press("Control+z")
    graph = _saved_graph(page, console_stack, admin, app["id"])
    assert {n["id"]: n.get("parent_id") for n in graph["nodes"]}["c"] == "it"


def test_agent_debug_preview_shows_each_round_with_its_tool_call_and_observation(signed_in, console_stack,
                                                                                admin) -> None:
    """An agent app configured through its panel (the calculator tool, a forced first tool call:
    the grammar-constrained call the orchestrator's own agent test relies on with the bundled
    model) and run in the chat preview: the rounds streamed as agent_thought events are shown,
    the first with its tool call and the tool's observation."""
    page = signed_in
    page.set_viewport_size(WIDE)
    ws = admin.workspace_id
    app = console_stack.api("POST", f"/console/api/workspaces/{ws}/apps", admin.token,
                            json={"name": f"Calculator agent {uuid.uuid4().hex[:4]}", "mode": "agent"}).json()
    page.goto(f"{console_stack.url}/w/{ws}/apps/{app['id']}/editor")
    agent = _panel(page, "agent")
    agent.get_by_label("Max tokens").fill("48")
    agent.get_by_label("Instruction").fill("Use the calculator.")
    agent.get_by_role("button", name="+ Tool").click()
    agent.get_by_label("Tool 1").fill("math.eval")
    agent.get_by_label("First call").select_option("required")
    agent.get_by_label("Max rounds").fill("2")
    graph = _saved_graph(page, console_stack, admin, app["id"])
    data = next(n["data"] for n in graph["nodes"] if n["id"] == "agent")
    assert [t["tool_name"] for t in data["tools"]] == ["math.eval"], data
    assert (data["tool_choice"], data["max_iterations"]) == ("required", 2), data

    page.get_by_test_id("debug").click()
    page.get_by_test_id("chat-input").fill("What is 2 + 3?")
    page.get_by_test_id("chat-send").click()
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=240_000)
    # Agent apps stream messages and rounds, not node events (as Dify's agent-chat apps do).
    first = page.get_by_test_id("agent-round-1")
    expect(first).to_contain_text("Tool call: math.eval")
    expect(first).to_contain_text("expression")  # its own arguments, decoded
    expect(first).to_contain_text("Observation:")
    page.screenshot(path=str(ARTIFACTS / "editor-agent-rounds.png"))
