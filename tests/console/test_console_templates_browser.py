"""The console's "Create from template" with the gateway's template catalogue, in real Chromium
against the real stack: the catalogue's customer-service template is offered beside the
starters, and choosing it installs the app and its FAQ dataset in one step."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_create_from_a_catalogue_template_installs_the_app_and_its_dataset(signed_in, console_stack, admin) -> None:
    page = signed_in
    page.get_by_role("button", name="Create app").click()
    dialog = page.get_by_role("dialog")
    start = dialog.get_by_label("Start from")
    expect(start.locator("option", has_text="Template: Summarizer")).to_have_count(1)  # the starters stay
    start.select_option(label="Template: Customer service")
    expect(dialog.get_by_text("Also creates: Product FAQ.")).to_be_visible()
    dialog.get_by_label("App name").fill("Support desk")
    dialog.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Support desk")).to_be_visible()
    expect(page.get_by_text("Chatflow ·")).to_be_visible()
    datasets = console_stack.api("GET", "/v1/datasets", admin.token,
                                 headers={"X-Workspace-Id": admin.workspace_id}).json()["data"]
    assert "Product FAQ" in {d["name"] for d in datasets}
