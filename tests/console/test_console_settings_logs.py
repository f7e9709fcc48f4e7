"""The console's settings and logs in real Chromium against the real stack: pulling a model into
the local engine with a progress bar fed by the engine's real progress (the wizard's model step
and the Settings page; the engine's library is a loopback registry serving `tiny`), S3-compatible
file storage chosen in Settings against a local moto server that checks signatures (test, save,
a wrong secret refused with a readable message), a dataset's chunking and retrieval method set
on its Settings tab and used by the next upload, and an app's conversations with the feedback
end users gave through the service API. Every server is on loopback. One stack for the module;
the first test walks the wizard on its fresh database, the others also run alone."""

from __future__ import annotations

import re

import httpx
import moto_s3  # the gateway tests' (console_harness puts their folder on the path)
import pytest
from console_harness import ADMIN_EMAIL, ADMIN_NAME, PASSWORD, WORKSPACE, ConsoleStack, start_all
from model_registry import MODEL, TinyRegistry
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.integration]

INDEXING_TIMEOUT_MS = 180_000  # embeddings on a loaded 2-core box


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = TinyRegistry(tmp_path_factory.mktemp("registry"))
    yield r
    r.close()


@pytest.fixture(scope="module")
def console_stack(database_url, console_dist, tmp_path_factory, registry):
    """conftest's stack, its engine pulling from the loopback registry instead of the public one."""
    nats, stack, server = start_all(database_url, tmp_path_factory.mktemp("console-stack"), console_dist,
                                    inference_env={"LOOM_INFERENCE_REGISTRY_URL": registry.url})
    try:
        yield ConsoleStack(server.url, stack)
    finally:
        server.stop()
        stack.stop()
        nats.stop()


def _pull(page, model: str) -> None:
    pull = page.get_by_role("form", name="Pull a model")
    pull.get_by_label("Model to pull").fill(model)
    pull.get_by_role("button", name="Pull model").click()


def _expect_pulled(page, model: str) -> None:
    progress = page.get_by_test_id("pull-progress")
    expect(progress.get_by_role("status")).to_have_text(f"Pulled {model} (success) · 100 %", timeout=120_000)
    expect(progress.get_by_label("Pull progress")).to_have_attribute("value", "100")


def test_wizard_model_step_pulls_a_model_with_a_progress_bar(page, console_stack) -> None:
    assert console_stack.api("GET", "/console/api/setup").json()["step"] == "not_started"
    page.goto(console_stack.url + "/")
    page.get_by_label("Admin email").fill(ADMIN_EMAIL)
    page.get_by_label("Admin name").fill(ADMIN_NAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Workspace name").fill(WORKSPACE)
    page.get_by_role("button", name="Create admin and workspace").click()

    expect(page.get_by_role("heading", name="Model endpoints")).to_be_visible()
    _pull(page, MODEL)
    _expect_pulled(page, MODEL)
    expect(page.get_by_text(f"{MODEL}:latest")).to_be_visible()  # the engine's model list, refreshed
    for _ in range(3):
        page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Finish and open the console").click()
    expect(page.get_by_role("heading", name="Apps")).to_be_visible()


def test_settings_pull_shows_progress_and_refusals(signed_in, console_stack, admin) -> None:
    page = signed_in
    page.goto(f"{console_stack.url}/w/{admin.workspace_id}/settings")
    page.get_by_role("tab", name="Model endpoints").click()
    _pull(page, "pkg:no_such_package")  # refused by the engine before any progress: the API's message
    expect(page.get_by_role("form", name="Pull a model").get_by_role("alert")).to_contain_text("unknown model package")
    _pull(page, MODEL)
    _expect_pulled(page, MODEL)
    models = console_stack.api("GET", f"/console/api/workspaces/{admin.workspace_id}/models", admin.token).json()
    assert f"{MODEL}:latest" in {m["name"] for m in models["data"] if m["source"] == "engine"}
    audit = console_stack.api("GET", f"/console/api/workspaces/{admin.workspace_id}/audit-logs", admin.token,
                              params={"action": "models.pull"}).json()["data"]
    assert {(a["detail"]["model"], a["detail"]["outcome"]) for a in audit} == {(MODEL, "success")}


@pytest.fixture
def s3():
    server = moto_s3.start(check_keys=True)
    yield server
    server.stop()


def test_s3_storage_chosen_in_settings_and_a_wrong_secret_refused(signed_in, console_stack, admin, s3) -> None:
    page = signed_in
    page.goto(f"{console_stack.url}/w/{admin.workspace_id}/settings")
    page.get_by_role("tab", name="File storage").click()
    form = page.get_by_role("form", name="File storage")
    form.get_by_label("Storage backend").select_option("s3")
    form.get_by_label("Bucket").fill(moto_s3.BUCKET)
    form.get_by_label("Key prefix").fill("console")
    form.get_by_label("Endpoint URL").fill(s3.url)
    form.get_by_label("Region").fill(moto_s3.REGION)
    form.get_by_label("Access key ID").fill(s3.access_key_id)
    form.get_by_label("Secret access key").fill(s3.secret_access_key)
    form.get_by_role("button", name="Test connection").click()
    expect(form.get_by_test_id("storage-test")).to_have_text("Connection works (s3)")
    form.get_by_role("button", name="Save storage").click()
    expect(form.get_by_text("Saved.")).to_be_visible()
    stored = console_stack.api("GET", f"/console/api/workspaces/{admin.workspace_id}/settings/storage",
                               admin.token).json()
    assert stored["backend"] == "s3" and stored["s3"]["endpoint_url"] == s3.url
    assert stored["s3"]["secret_access_key_set"] is True and s3.secret_access_key not in str(stored)

    # A wrong secret: the test says what is wrong, and saving it is refused (the good one stays).
    wrong = "not-the-secret"
    form.get_by_label("Secret access key").fill(wrong)
    form.get_by_role("button", name="Test connection").click()
    expect(form.get_by_test_id("storage-test")).to_have_text(
        "Connection failed: the secret access key does not match the access key ID (SignatureDoesNotMatch)")
    form.get_by_role("button", name="Save storage").click()
    expect(form.get_by_role("alert")).to_contain_text(
        "Not saved: the bucket could not be used: the secret access key does not match the access key ID")
    saved = console_stack.api("POST", f"/console/api/workspaces/{admin.workspace_id}/settings/storage/test",
                              admin.token).json()
    assert saved == {"ok": True, "backend": "s3", "error": None}
    # Back to the local folder, so the module's other tests store files as before.
    console_stack.api("PUT", f"/console/api/workspaces/{admin.workspace_id}/settings/storage", admin.token,
                      json={"backend": "local"}).raise_for_status()


def test_dataset_chunking_and_retrieval_method_edited_in_settings(signed_in, console_stack, admin, tmp_path) -> None:
    page = signed_in
    kb = {"X-Workspace-Id": admin.workspace_id}
    ds = console_stack.api("POST", "/v1/datasets", admin.token, headers=kb, json={"name": "Ferries"}).json()
    page.goto(f"{console_stack.url}/w/{admin.workspace_id}/knowledge/{ds['id']}/settings")
    form = page.get_by_role("form", name="Dataset settings")
    form.get_by_label("Retrieval method").select_option("full_text_search")
    form.get_by_label("Chunking mode").select_option("custom")
    form.get_by_label("Separator", exact=True).fill("\\n")
    form.get_by_label("Max tokens per chunk").fill("32")
    form.get_by_label("Chunk overlap (tokens)").fill("0")
    form.get_by_role("button", name="Save settings").click()
    expect(form.get_by_text("Saved.")).to_be_visible()

    got = console_stack.api("GET", f"/v1/datasets/{ds['id']}", admin.token, headers=kb).json()
    assert got["retrieval_model_dict"]["search_method"] == "full_text_search"
    assert got["process_rule"]["mode"] == "custom"
    assert got["process_rule"]["rules"]["segmentation"] == {"separator": "\n", "max_tokens": 32, "chunk_overlap": 0}
    page.reload()  # what the page shows is what was stored
    form = page.get_by_role("form", name="Dataset settings")
    expect(form.get_by_label("Chunking mode")).to_have_value("custom")
    expect(form.get_by_label("Max tokens per chunk")).to_have_value("32")
    expect(form.get_by_label("Separator", exact=True)).to_have_value("\\n")
    expect(form.get_by_label("Retrieval method")).to_have_value("full_text_search")
    # A size the knowledge service refuses: its message, naming what is wrong.
    form.get_by_label("Chunk overlap (tokens)").fill("40")
    form.get_by_role("button", name="Save settings").click()
    expect(form.get_by_role("alert")).to_contain_text("chunk_overlap must be smaller than max_tokens")

    # The next upload uses the dataset's chunking by default: twelve lines, one chunk or two each.
    page.get_by_role("tab", name="Documents").click()
    expect(page.get_by_label("Chunking", exact=True)).to_have_value("dataset")
    expect(page.get_by_label("Chunking", exact=True)).to_contain_text("custom: 32 tokens, overlap 0")
    text = tmp_path / "ferries.txt"
    text.write_text("\n".join(f"Line {i}: the harbour ferry number {i} leaves the pier at {i} o'clock sharp."
                              for i in range(12)))
    page.get_by_label("Files", exact=True).set_input_files([str(text)])
    status = page.locator('tr[data-document="ferries.txt"]').get_by_test_id("indexing-status")
    expect(status).to_have_text("completed", timeout=INDEXING_TIMEOUT_MS)
    docs = console_stack.api("GET", f"/v1/datasets/{ds['id']}/documents", admin.token, headers=kb).json()["data"]
    segments = console_stack.api("GET", f"/v1/datasets/{ds['id']}/documents/{docs[0]['id']}/segments",
                                 admin.token, headers=kb, params={"limit": 100}).json()
    assert segments["total"] >= 6, segments["total"]


def _chat_app_with_key(console_stack, admin) -> tuple[str, str]:
    base = f"/console/api/workspaces/{admin.workspace_id}"
    app_id = console_stack.api("POST", f"{base}/apps", admin.token, json={"name": "Feedback bot", "mode": "chat"}
                               ).json()["id"]
    draft = console_stack.api("GET", f"{base}/apps/{app_id}/draft", admin.token).json()["dsl"]
    for node in draft["workflow"]["graph"]["nodes"]:
        if "model" in node["data"]:  # the test asserts structure, not prose: short answers
            node["data"]["model"].setdefault("completion_params", {})["max_tokens"] = 6
    console_stack.api("PUT", f"{base}/apps/{app_id}/draft", admin.token, json={"dsl": draft}).raise_for_status()
    console_stack.api("POST", f"{base}/apps/{app_id}/publish", admin.token).raise_for_status()
    key = console_stack.api("POST", f"{base}/apps/{app_id}/api-keys", admin.token, json={"name": "t"}).json()["token"]
    return app_id, key


def test_logs_show_conversations_with_the_feedback_given_through_the_service_api(signed_in, console_stack,
                                                                                 admin) -> None:
    page = signed_in
    app_id, key = _chat_app_with_key(console_stack, admin)
    h = {"Authorization": f"Bearer {key}"}

    def chat(user: str, query: str) -> dict:
        r = httpx.post(f"{console_stack.url}/v1/chat-messages", headers=h, timeout=180,
                       json={"inputs": {}, "query": query, "response_mode": "blocking", "user": user})
        assert r.status_code == 200, r.text
        return r.json()

    liked, disliked = chat("alice", "Name a harbour."), chat("bob", "Name a river.")
    for message, rating, user, content in ((liked, "like", "alice", "spot on"), (disliked, "dislike", "bob", None)):
        r = httpx.post(f"{console_stack.url}/v1/messages/{message['message_id']}/feedbacks", headers=h,
                       json={"rating": rating, "user": user, "content": content}, timeout=30)
        assert r.status_code == 200, r.text

    page.goto(f"{console_stack.url}/w/{admin.workspace_id}/apps/{app_id}/logs")
    table = page.get_by_role("table", name="Conversations")
    expect(table.get_by_role("row")).to_have_count(3)  # the header and two conversations
    page.get_by_label("Feedback", exact=True).select_option("like")
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table).to_contain_text("alice")
    table.get_by_role("button", name="Name a harbour.").click()
    messages = page.get_by_test_id("conversation-messages")
    expect(messages.get_by_test_id("conversation-message")).to_have_count(1)
    expect(messages).to_contain_text("Name a harbour.")
    expect(messages.get_by_test_id("message-feedback")).to_have_text("Liked: “spot on”")

    page.get_by_label("Feedback", exact=True).select_option("dislike")
    expect(table).to_contain_text("bob")
    expect(table).not_to_contain_text("alice")
    table.get_by_role("button", name="Name a river.").click()
    expect(messages.get_by_test_id("message-feedback")).to_have_text("Disliked")
    messages.get_by_role("button", name="Show trace").click()
    expect(messages.get_by_test_id("run-trace")).to_contain_text("succeeded")

    page.get_by_label("Feedback", exact=True).select_option("")
    page.get_by_label("End user", exact=True).fill("nobody")
    expect(page.get_by_text("No conversations match these filters.")).to_be_visible()
    assert re.search(r"/logs$", page.url)
