"""The console in real Chromium against the real stack (tests/console/conftest.py): the setup
wizard on a fresh database, login and the workspace switcher, knowledge (multi-file upload to
`completed`, chunks, retrieval testing, disabling a document), roles (a `normal` member sees no publish control and
the API refuses it), and API access (publish, create a key, call /v1/chat-messages with it,
read the run's trace in the logs, revoke). One stack for the module; tests run in file order
(the first walks the wizard), but each also runs alone (`admin` sets up through the API)."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from console_harness import ADMIN_EMAIL, ADMIN_NAME, PASSWORD, WORKSPACE, sign_in
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.integration]

INDEXING_TIMEOUT_MS = 180_000  # embeddings on a loaded 2-core box


def test_setup_wizard_on_a_fresh_database(page, console_stack) -> None:
    url = console_stack.url
    assert console_stack.api("GET", "/console/api/setup").json()["step"] == "not_started"
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/setup$"))

    # 1. Admin account and first workspace.
    page.get_by_label("Admin email").fill(ADMIN_EMAIL)
    page.get_by_label("Admin name").fill(ADMIN_NAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Workspace name").fill(WORKSPACE)
    page.get_by_role("button", name="Create admin and workspace").click()

    # 2. Model endpoints: the stack's own engine as an OpenAI-compatible server, tested for real.
    expect(page.get_by_role("heading", name="Model endpoints")).to_be_visible()
    page.get_by_label("Endpoint name").fill("local engine")
    page.get_by_label("Base URL").fill(console_stack.service_url("inference") + "/v1")
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_test_id("endpoint-test")).to_contain_text("Connection works")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("cell", name="local engine", exact=True)).to_be_visible()
    page.get_by_role("button", name="Continue").click()

    # 3. Default models: the engine's listed model as the chat default.
    expect(page.get_by_role("heading", name="Default models")).to_be_visible()
    tested = console_stack.api("GET", "/console/api/setup").json()  # still reachable
    assert tested["step"] == "finished"
    chat = page.get_by_label("Default chat model")
    expect(chat).not_to_have_value("")  # the service's default is shown
    page.get_by_role("button", name="Save default models").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    page.get_by_role("button", name="Continue").click()

    # 4. File storage: the local folder, its connection test, saved.
    expect(page.get_by_role("heading", name="File storage")).to_be_visible()
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_test_id("storage-test")).to_contain_text("Connection works")
    page.get_by_role("button", name="Save storage").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    page.get_by_role("button", name="Continue").click()

    # 5. Audit log retention.
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    page.get_by_label("Keep audit entries for (days)").fill("30")
    page.get_by_label("Also record API key usage").check()
    page.get_by_role("button", name="Save retention").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    page.get_by_role("button", name="Finish and open the console").click()
    expect(page.get_by_role("heading", name="Apps")).to_be_visible()
    expect(page.get_by_label("Workspace", exact=True)).to_have_value(re.compile(".+"))

    # What the wizard set is what the API now says.
    login = console_stack.api("POST", "/console/api/login", json={"email": ADMIN_EMAIL, "password": PASSWORD}).json()
    token = login["access_token"]
    ws = console_stack.api("GET", "/console/api/workspaces", token).json()["data"]
    assert [w["name"] for w in ws] == [WORKSPACE]
    base = f"/console/api/workspaces/{ws[0]['id']}"
    assert [e["name"] for e in console_stack.api("GET", f"{base}/model-endpoints", token).json()["data"]] == [
        "local engine"]
    audit = console_stack.api("GET", f"{base}/audit-settings", token).json()
    assert (audit["retention_days"], audit["record_key_usage"]) == (30, True)
    assert console_stack.api("GET", f"{base}/settings/storage", token).json()["backend"] == "local"

    # Done: the wizard is refused, and `/` leads a signed-out visitor to login.
    assert console_stack.api("POST", "/console/api/setup", json={
        "email": "x@example.com", "name": "X", "password": PASSWORD}).status_code == 403
    page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(url + "/setup")
    expect(page).to_have_url(re.compile(r"/login$"))


def test_login_keeps_the_session_and_switches_workspace(page, console_stack, admin) -> None:
    other = console_stack.api("POST", "/console/api/workspaces", admin.token, json={"name": "Second"}).json()
    page.goto(console_stack.url + "/login")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()  # the API's message, not a blank page
    # Keyboard only: the email field has focus, Tab moves to the password, Enter submits.
    page.get_by_label("Email").fill("")
    page.get_by_label("Email").focus()
    page.keyboard.type(admin.email)
    page.keyboard.press("Tab")
    page.keyboard.type(admin.password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Apps")).to_be_visible()
    page.reload()  # the tokens are kept: still signed in
    expect(page.get_by_role("heading", name="Apps")).to_be_visible()
    page.get_by_label("Workspace", exact=True).select_option(label="Second")
    expect(page).to_have_url(re.compile(f"/w/{other['id']}/apps$"))
    expect(page.get_by_text("No apps yet")).to_be_visible()


def test_upload_reaches_completed_and_retrieval_finds_its_token(signed_in, console_stack, tmp_path) -> None:
    page = signed_in
    token = f"quzzlewick{uuid.uuid4().hex[:8]}"
    first = tmp_path / "lighthouse.txt"
    first.write_text(f"The lighthouse keeper logs the code word {token} every night at nine.\n\n"
                     "Storms in the north bay arrive from the west in autumn.\n")
    second = tmp_path / "orchard.md"
    second.write_text("# Orchard\n\nApples ripen in September; pears a little later.\n")

    page.get_by_role("link", name="Knowledge").click()
    page.get_by_role("button", name="Create dataset", exact=True).click()
    page.get_by_label("Dataset name").fill("Field notes")
    page.get_by_role("dialog").get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Field notes")).to_be_visible()

    page.get_by_label("Files", exact=True).set_input_files([str(first), str(second)])
    uploads = page.get_by_role("list", name="Uploads")
    expect(uploads.get_by_role("listitem")).to_have_count(2)
    expect(uploads.get_by_text("uploaded")).to_have_count(2)
    for name in ("lighthouse.txt", "orchard.md"):
        status = page.locator(f'tr[data-document="{name}"]').get_by_test_id("indexing-status")
        expect(status).to_have_text("completed", timeout=INDEXING_TIMEOUT_MS)

    page.get_by_role("button", name="lighthouse.txt").click()
    expect(page.get_by_test_id("chunks")).to_contain_text(token)
    # Edit a chunk in place: rag stores (and re-embeds) the new text.
    chunks = page.get_by_test_id("chunks")
    chunks.get_by_role("button", name="Edit").first.click()
    chunks.get_by_label("Chunk text").fill(f"Edited: the keeper's code word is {token}.")
    chunks.get_by_role("button", name="Save chunk").click()
    expect(chunks).to_contain_text(f"Edited: the keeper's code word is {token}.")

    page.get_by_role("tab", name="Retrieval testing").click()
    page.get_by_label("Query").fill(token)
    page.get_by_label("Method").select_option(label="Full text")
    page.get_by_role("button", name="Test retrieval").click()
    results = page.get_by_test_id("retrieval-results").get_by_role("listitem")
    expect(results.first).to_contain_text(token)
    expect(results.first).to_contain_text(re.compile(r"score \d\.\d{3}"))
    expect(page.get_by_test_id("retrieval-method")).to_contain_text("Full text")

    # Disabled, the document's chunks are no longer retrieved; enabled again, they are.
    page.get_by_role("tab", name="Documents").click()
    page.get_by_label("Disable lighthouse.txt").click()  # the box follows the API's answer
    expect(page.get_by_label("Enable lighthouse.txt")).not_to_be_checked()
    page.get_by_role("tab", name="Retrieval testing").click()
    page.get_by_label("Query").fill(token)
    page.get_by_label("Method").select_option(label="Full text")
    page.get_by_role("button", name="Test retrieval").click()
    expect(page.get_by_text("No chunk matched.")).to_be_visible()
    page.get_by_role("tab", name="Documents").click()
    page.get_by_label("Enable lighthouse.txt").click()
    expect(page.get_by_label("Disable lighthouse.txt")).to_be_checked()

    # A knowledge API key made in the console reads the same datasets.
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Knowledge").click()
    page.get_by_label("Dataset key name").fill("sync job")
    page.get_by_role("button", name="Create dataset key").click()
    key = page.get_by_test_id("new-dataset-key").inner_text()
    listed = httpx.get(f"{console_stack.url}/v1/datasets", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert listed.status_code == 200, listed.text
    assert "Field notes" in [d["name"] for d in listed.json()["data"]]


def test_normal_member_sees_no_publish_control_and_the_api_refuses(page, console_stack, admin) -> None:
    app = console_stack.api("POST", f"/console/api/workspaces/{admin.workspace_id}/apps", admin.token,
                            json={"name": "Team bot", "mode": "chat"}).json()
    # The admin invites a normal member in the UI and hands over the link.
    sign_in(page, console_stack.url, admin.email, admin.password)
    page.get_by_role("link", name="Members").click()
    page.get_by_label("Email").fill("nora@example.com")
    page.get_by_label("Role", exact=True).select_option("normal")
    page.get_by_role("button", name="Invite").click()
    link = page.get_by_test_id("invite-link").inner_text()
    expect(page.get_by_role("table", name="Invitations")).to_contain_text("nora@example.com")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))

    page.goto(link)
    page.get_by_label("Your name").fill("Nora")
    page.get_by_label("Password").fill("nora's password")
    page.get_by_role("button", name="Join workspace").click()
    expect(page.get_by_role("heading", name="Apps")).to_be_visible()
    expect(page.get_by_text("Role: normal")).to_be_visible()
    # No write controls, no settings or audit sections for a normal member.
    expect(page.get_by_role("button", name="Create app")).to_have_count(0)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    page.get_by_role("link", name="Team bot").click()
    expect(page.get_by_role("heading", name="Team bot")).to_be_visible()
    expect(page.get_by_role("tab", name="API access")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("publish", re.I))).to_have_count(0)
    expect(page.get_by_test_id("publish")).to_have_count(0)

    nora = console_stack.api("POST", "/console/api/login", json={"email": "nora@example.com",
                                                                 "password": "nora's password"}).json()["access_token"]
    refused = console_stack.api("POST", f"/console/api/workspaces/{admin.workspace_id}/apps/{app['id']}/publish", nora)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "forbidden"

    # The admin makes her an editor in the Members page: the role the API then reports.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, console_stack.url, admin.email, admin.password)
    page.get_by_role("link", name="Members").click()
    page.get_by_label("Role of nora@example.com").select_option("editor")
    members = console_stack.api("GET", f"/console/api/workspaces/{admin.workspace_id}/members", admin.token)
    expect(page.get_by_label("Role of nora@example.com")).to_have_value("editor")
    roles = {m["email"]: m["role"] for m in members.json()["data"]}
    assert roles.get("nora@example.com") in {"normal", "editor"}  # read before or after the change lands
    roles = {m["email"]: m["role"] for m in console_stack.api(
        "GET", f"/console/api/workspaces/{admin.workspace_id}/members", admin.token).json()["data"]}
    assert roles["nora@example.com"] == "editor"


def test_api_key_created_in_the_console_answers_chat_messages(signed_in, console_stack, admin) -> None:
    page = signed_in
    page.get_by_role("button", name="Create app").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Chatbot", exact=True).click()
    dialog.get_by_label("App name").fill("Support bot")
    dialog.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Support bot")).to_be_visible()
    app_id = re.search(r"/apps/([^/]+)", page.url).group(1)
    _cap_answers(console_stack, admin, app_id, max_tokens=12)  # the tests assert structure, not prose

    page.get_by_role("tab", name="API access").click()
    page.get_by_test_id("publish").click()
    expect(page.get_by_test_id("published-version")).to_have_text("published v1")
    page.get_by_label("Key name").fill("from the test")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-key-token").inner_text()
    assert key.startswith("app-")
    expect(page.get_by_test_id("curl-example")).to_contain_text(f"{console_stack.url}/v1/chat-messages")

    r = httpx.post(f"{console_stack.url}/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                   json={"inputs": {}, "query": "Say hello.", "response_mode": "blocking", "user": "tester"},
                   timeout=180)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["event"] == "message" and isinstance(body["answer"], str) and body["conversation_id"]

    # The run is in the app's logs, with each node's trace read back from its events. (Tabs move
    # with the arrow keys, as WAI-ARIA tabs do.)
    page.get_by_role("tab", name="API access").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Logs")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab", name="Logs")).to_be_focused()
    expect(page.get_by_role("table", name="Conversations")).to_contain_text("tester")  # a chat app opens on them
    page.get_by_role("button", name="Runs", exact=True).click()
    page.get_by_role("table").get_by_role("button").first.click()
    trace = page.get_by_test_id("run-trace")
    expect(trace).to_contain_text("succeeded")
    expect(trace.locator(".trace-node")).to_have_count(3)  # start, LLM, answer
    page.get_by_role("tab", name="Monitoring").click()
    expect(page.get_by_test_id("metrics")).to_contain_text("Requests1")

    # Revoked in the console: the key stops working.
    page.get_by_role("tab", name="API access").click()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("No keys yet.")).to_be_visible()
    r = httpx.post(f"{console_stack.url}/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                   json={"inputs": {}, "query": "Hi", "response_mode": "blocking", "user": "tester"}, timeout=30)
    assert r.status_code == 401


def test_apps_from_a_template_duplicated_exported_and_deleted(signed_in) -> None:
    page = signed_in
    page.get_by_role("button", name="Create app").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Start from").select_option(label="Template: Summarizer")
    dialog.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Summarizer")).to_be_visible()
    expect(page.get_by_text("Workflow ·")).to_be_visible()

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Apps").click()
    card = page.get_by_test_id("app-list").get_by_role("listitem").filter(has_text="Summarizer")
    with page.expect_download() as download:
        card.get_by_role("button", name="Export").click()
    assert download.value.suggested_filename == "Summarizer.yml"
    card.get_by_role("button", name="Duplicate").click()
    copy = page.get_by_test_id("app-list").get_by_role("listitem").filter(has_text="Summarizer (copy)")
    expect(copy).to_be_visible()
    page.get_by_label("Search apps").fill("(copy)")
    expect(page.get_by_test_id("app-list").get_by_role("listitem")).to_have_count(1)
    page.once("dialog", lambda d: d.accept())
    copy.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No app matches.")).to_be_visible()


def test_audit_log_viewer_filters_by_action(signed_in, console_stack, admin) -> None:
    page = signed_in
    page.get_by_role("link", name="Audit log").click()
    table = page.get_by_test_id("audit-table")
    expect(table).to_contain_text("setup.create")
    page.get_by_label("Action").fill("setup.create")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    page.get_by_label("Action").fill("no.such.action")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No entries match.")).to_be_visible()


def _cap_answers(console_stack, admin, app_id: str, max_tokens: int) -> None:
    path = f"/console/api/workspaces/{admin.workspace_id}/apps/{app_id}/draft"
    draft = console_stack.api("GET", path, admin.token).json()["dsl"]
    for node in draft["workflow"]["graph"]["nodes"]:
        if "model" in node["data"]:
            node["data"]["model"].setdefault("completion_params", {})["max_tokens"] = max_tokens
    console_stack.api("PUT", path, admin.token, json={"dsl": draft}).raise_for_status()
