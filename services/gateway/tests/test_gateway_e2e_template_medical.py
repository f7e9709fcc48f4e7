"""The medical-agent template end to end on the real stack (inference, rag, tools, orchestrator,
gateway as processes; real NATS and Postgres): installed into a fresh workspace in one call,
published, and asked through the Dify API. Its knowledge graph is the tools service's sample
(migration 0030_medkg.sql), read by the built-in medkg.* tools.

The model is the template tests' SCRIPTED backend (template_testkit.ScriptedModel: an
OpenAI-compatible server on loopback registered with the real inference service for the
workspace; it is not a model, the 270M base model cannot name drugs): the agent's draft is a
fixed text per question, proposing a drug the patient's condition rules out, or stating a
diagnosis. So the assertions are on behaviour and structure, read from the answer and the
run's node trace (the console's stored run events): the contraindicated drug is removed with
the graph's reason, a value read by OCR from a scanned report (a PNG drawn here) is flagged,
the compliance review adds the disclaimer and escalation advice, and blocks a diagnosis.
A second pass on the real bundled model asserts structure only."""

from __future__ import annotations

import io

import httpx
import pytest
from template_testkit import Installed, ScriptedModel, install_template

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

SCRIPTED = "scripted-medical"
DRAFTS = {
    "headache": ("For the headache you could take ibuprofen 400 mg every 8 hours with food. "
                 "Paracetamol 1 g up to four times a day is an alternative. Drink plenty of water."),
    "report": "Your report has a value to discuss with your doctor at your next visit.",
    "wrong": "You definitely have pneumonia. Take amoxicillin 500 mg three times a day.",
    "chest": "It is probably a pulled muscle, so rest and a warm compress may help.",
}
STEPS = ("start", "scans", "read_report", "labs", "facts", "draft", "check", "review", "verdict")


def _answer(messages: list[dict]) -> str:
    """The scripted backend's draft, by the patient's question (the agent's only model call)."""
    question = messages[-1]["content"].lower()
    return next((text for word, text in DRAFTS.items() if word in question), "Please see your doctor.")


@pytest.fixture
def scripted_model():
    with ScriptedModel(SCRIPTED, _answer) as model:
        yield model


def _lab_report_png() -> bytes:
    """A scanned lab report: drawn text, large enough for the OCR (rapidocr) to read."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (1300, 520), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=56)
    for i, line in enumerate(["CITY LAB - BLOOD TEST", "Glucose 180 mg/dL", "Sodium 140 mmol/L"]):
        draw.text((40, 40 + 140 * i), line, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _ask(http: httpx.Client, stack, app: Installed, query: str, *, inputs: dict | None = None,
         files: list | None = None, timeout: float = 180,
         statuses: tuple[str, ...] = ("succeeded",)) -> tuple[str, dict[str, dict]]:
    """The answer and the run's node trace: {node_id: its node_finished data}, from the console."""
    r = http.post(f"{stack.gateway_url}/v1/chat-messages", headers=app.auth, timeout=timeout, json={
        "inputs": inputs or {}, "query": query, "user": "patient-1", "response_mode": "blocking",
        "files": files or []})
    assert r.status_code == 200, r.text
    run_id = r.json()["task_id"]
    events = http.get(f"{app.base}/apps/{app.app_id}/runs/{run_id}/events", headers=stack.console).json()
    assert events["status"] in statuses, events
    trace = {e["data"]["node_id"]: e["data"] for e in events["data"] if e["event"] == "node_finished"}
    return r.json()["answer"], trace


def test_medical_template_blocks_a_contraindicated_drug_reads_a_scan_and_reviews(stack, scripted_model) -> None:
    with stack.http() as http:
        app = install_template(stack, http, "medical-agent", workspace="med-template", scripted=scripted_model)
        patient = {"conditions": "stomach ulcer", "medications": "metformin 500 mg"}

        # A drug the patient's condition rules out: removed, with the knowledge graph's reason.
        answer, trace = _ask(http, stack, app, "I have a headache, what can I take?", inputs=patient)
        assert set(STEPS) <= set(trace) and {"compose", "answer"} <= set(trace) and "blocked" not in trace
        check = trace["check"]["outputs"]["json"]
        assert check["proposed"] == ["Ibuprofen", "Paracetamol"] and check["allowed"] == ["Paracetamol"]
        [blocked] = check["blocked"]
        assert blocked["drug"] == "Ibuprofen" and blocked["with"] == "Peptic ulcer disease"
        assert "ibuprofen 400" not in answer.lower() and "Paracetamol 1 g" in answer
        assert "Ibuprofen is not suitable here" in answer and "Peptic ulcer disease" in answer
        # The compliance review added the disclaimer; the agent's prompt had the graph's facts.
        assert trace["review"]["outputs"]["json"]["verdict"] == "rewritten" and "not medical advice" in answer
        assert "Biguanide" in scripted_model.prompts[-1][0]["content"]

        # A scanned report: OCR through document-extractor, the glucose value flagged high.
        up = http.post(f"{stack.gateway_url}/v1/files/upload", headers=app.auth, timeout=30,
                       files={"file": ("lab.png", _lab_report_png(), "image/png")}, data={"user": "patient-1"})
        assert up.status_code == 201, up.text
        scan = [{"type": "image", "transfer_method": "local_file", "upload_file_id": up.json()["id"]}]
        answer, trace = _ask(http, stack, app, "Can you read my lab report?", files=scan, timeout=300)
        assert "Glucose 180" in trace["read_report"]["outputs"]["text"][0]
        values = {v["test"]: (v["value"], v["flag"]) for v in trace["labs"]["outputs"]["json"]["values"]}
        assert values["glucose"] == (180.0, "high") and values.get("sodium", (140.0, "normal"))[1] == "normal"
        assert answer.startswith("Out of range in the report:") and "Glucose (fasting) 180 mg/dL: HIGH" in answer
        assert "Sodium" not in answer
        assert "Glucose (fasting) 180" in scripted_model.prompts[-1][0]["content"]  # the draft saw the finding

        # A definitive diagnosis: the review blocks the draft (and its drug) for a safe answer.
        answer, trace = _ask(http, stack, app, "I have a cough and a fever, what is wrong with me?")
        review = trace["review"]["outputs"]["json"]
        assert review["verdict"] == "blocked" and review["findings"][0]["rule"] == "definitive_diagnosis"
        assert "blocked" in trace and "compose" not in trace
        assert "pneumonia" not in answer and "amoxicillin" not in answer.lower() and "not medical advice" in answer

        # A red-flag symptom: escalation advice first, whatever the draft said.
        answer, trace = _ask(http, stack, app, "I have chest pain spreading to my left arm")
        assert answer.startswith("Chest pain can be a heart attack") and "emergency services" in answer
        rules = [f["rule"] for f in trace["review"]["outputs"]["json"]["findings"]]
        assert rules == ["escalation_added", "disclaimer_added"]


def test_medical_template_runs_on_the_bundled_model(stack) -> None:
    """The real bundled model (a 270M base model) drafts: structure only. Every step ran, the
    check and the review decided, and the answer is one of the template's two endings."""
    with stack.http() as http:
        app = install_template(stack, http, "medical-agent", workspace="med-bundled", max_tokens=32)
        # partial-succeeded: the agent failed (e.g. cut short) and its fallback text went on.
        answer, trace = _ask(http, stack, app, "I have a headache, can I take ibuprofen?",
                             inputs={"conditions": "asthma"}, timeout=300, statuses=("succeeded", "partial-succeeded"))
    assert set(STEPS) <= set(trace) and ({"compose", "answer"} <= set(trace) or "blocked" in trace)
    assert all(trace[s]["status"] == "succeeded" for s in STEPS if s != "draft")
    assert trace["draft"]["status"] == "succeeded" or trace["draft"]["outputs"]["text"].startswith("I could not")
    assert trace["review"]["outputs"]["json"]["verdict"] in ("pass", "rewritten", "blocked")
    assert isinstance(trace["check"]["outputs"]["json"]["blocked"], list) and answer.strip()
