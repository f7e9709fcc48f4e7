"""The LLM node panel's "Files (vision)" section in real Chromium against the real stack: turned on,
it offers `sys.files` by default and the image detail, and the autosaved draft carries Dify's
`vision` config (docs/dsl.md "llm: files (vision)")."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_llm_panel_turns_vision_on_and_the_draft_carries_it(signed_in, console_stack, admin) -> None:
    page = signed_in
    page.set_viewport_size({"width": 1600, "height": 1000})
    ws = admin.workspace_id
    r = console_stack.api("POST", f"/console/api/workspaces/{ws}/apps", admin.token,
                          json={"name": "Reads files", "mode": "chatflow"})
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    page.goto(f"{console_stack.url}/w/{ws}/apps/{app_id}/editor")
    expect(page.get_by_test_id("editor")).to_be_visible()
    page.get_by_test_id("node-llm").click(position={"x": 60, "y": 12})
    panel = page.get_by_test_id("panel-llm")
    expect(panel).to_be_visible()

    expect(panel.get_by_test_id("vision-var")).to_have_count(0)
    panel.get_by_label("Give the run's files to the model").check()
    expect(panel.get_by_test_id("vision-var")).to_have_value("sys.files")
    panel.get_by_label("Image detail").select_option("low")

    expect(page.get_by_test_id("save-state")).to_have_attribute("data-state", "saved", timeout=15_000)
    graph = console_stack.api("GET", f"/console/api/workspaces/{ws}/apps/{app_id}/draft",
                              admin.token).json()["dsl"]["workflow"]["graph"]
    llm = next(n for n in graph["nodes"] if n["id"] == "llm")
    assert llm["data"]["vision"] == {"enabled": True, "configs": {"variable_selector": ["sys", "files"],
                                                                  "detail": "low"}}
