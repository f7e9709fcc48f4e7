"""The editor's debugger with a human-input node, in real Chromium against the real stack: the
draft run pauses, its form shows in the debug panel, a bad answer shows the gateway's error
under the field it names, a good one resumes the run, which ends with the values in its outputs."""

from __future__ import annotations

import uuid

import pytest
from console_harness import ARTIFACTS
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.integration]

WIDE = {"width": 1600, "height": 1000}

GRAPH = {
    "nodes": [
        {"id": "start", "data": {"type": "start", "title": "Start", "variables": []}, "position": {"x": 0, "y": 0}},
        {"id": "review", "data": {"type": "human-input", "title": "Review",
                                  "form_content": "Approve the refund?",
                                  "fields": [{"name": "reply", "type": "paragraph", "label": "Reply"},
                                             {"name": "amount", "type": "number", "label": "Amount"}],
                                  "user_actions": [{"id": "approve", "title": "Approve"}]},
         "position": {"x": 300, "y": 0}},
        {"id": "end", "data": {"type": "end", "title": "End", "outputs": [
            {"variable": "reply", "value_selector": ["review", "reply"]},
            {"variable": "amount", "value_selector": ["review", "amount"]}]}, "position": {"x": 600, "y": 0}},
    ],
    "edges": [{"id": "e1", "source": "start", "target": "review"},
              {"id": "e2", "source": "review", "target": "end", "source_handle": "approve"}],
}


def test_the_debugger_shows_a_paused_runs_form_and_its_answer_resumes_the_run(signed_in, console_stack,
                                                                              admin) -> None:
    page = signed_in
    page.set_viewport_size(WIDE)
    ws = admin.workspace_id
    base = f"/console/api/workspaces/{ws}/apps"
    app = console_stack.api("POST", base, admin.token,
                            json={"name": f"Refunds {uuid.uuid4().hex[:4]}", "mode": "workflow"}).json()
    draft = console_stack.api("GET", f"{base}/{app['id']}/draft", admin.token).json()["dsl"]
    draft["workflow"]["graph"] = GRAPH
    r = console_stack.api("PUT", f"{base}/{app['id']}/draft", admin.token, json={"dsl": draft})
    assert r.is_success, r.text

    page.goto(f"{console_stack.url}/w/{ws}/apps/{app['id']}/editor")
    expect(page.get_by_test_id("node-review")).to_be_visible()
    page.get_by_test_id("debug").click()
    page.get_by_test_id("run-draft").click()
    expect(page.get_by_test_id("run-status")).to_have_text("paused", timeout=120_000)
    form = page.get_by_test_id("human-form-review")
    expect(form).to_contain_text("Approve the refund?")
    form.get_by_label("Amount *").fill("12.5")
    form.get_by_test_id("human-action-approve").click()  # no reply: the gateway names the field
    expect(form.get_by_role("alert")).to_contain_text("'reply' is required")
    form.get_by_label("Reply *").fill("Refund sent.")
    form.get_by_test_id("human-action-approve").click()
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=120_000)
    expect(page.get_by_test_id("run-outputs")).to_contain_text("Refund sent.")
    expect(page.get_by_test_id("run-outputs")).to_contain_text("12.5")
    page.screenshot(path=str(ARTIFACTS / "editor-human-input.png"))
