"""End to end on the real stack (every service a process, the bundled model, real NATS and
Postgres): a scanned lab report (a PNG drawn here with Pillow) is uploaded through the service
API, a workflow run reads it with a document-extractor node (the orchestrator fetches it from
the gateway's file store and OCRs it in the bounded child) and its values reach the LLM's
prompt. The base model's answer is nonsense: the test asserts the prompt and the structure."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from gateway_stack import app_with_key

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

FLOW = {
    "nodes": [
        {"id": "start", "data": {"type": "start", "variables": []}},
        {"id": "scans", "data": {"type": "list-operator", "variable": ["sys", "files"],
                                 "filter_by": {"enabled": True, "conditions": [
                                     {"key": "type", "comparison_operator": "in", "value": ["image"]}]}}},
        {"id": "doc", "data": {"type": "document-extractor", "variable_selector": ["scans", "result"],
                               "is_array_file": True}},
        {"id": "llm", "data": {"type": "llm", "model": {"name": "gemma3:270m",
                                                         "completion_params": {"max_tokens": 4, "temperature": 0}},
                               "prompt_template": [{"role": "user",
                                                    "text": "Summarise this lab report: {{#doc.text#}}"}]}},
        {"id": "end", "data": {"type": "end", "outputs": [
            {"variable": "report", "value_selector": ["doc", "text"]},
            {"variable": "pages", "value_selector": ["doc", "pages"]},
            {"variable": "summary", "value_selector": ["llm", "text"]}]}},
    ],
    "edges": [{"source": "start", "target": "scans"}, {"source": "scans", "target": "doc"},
              {"source": "doc", "target": "llm"}, {"source": "llm", "target": "end"}],
}


def _lab_report_png() -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (1200, 500), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=56)
    for i, line in enumerate(["CITY LAB - BLOOD TEST", "Glucose 180 mg/dL", "Cholesterol 240 mg/dL"]):
        draw.text((40, 40 + 130 * i), line, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_a_scanned_lab_report_reaches_the_llm_prompt(stack) -> None:
    _, key = app_with_key(stack, "workflow", FLOW, name="lab reader")
    h = {"Authorization": f"Bearer {key}"}
    url = f"{stack.gateway_url}/v1"
    up = httpx.post(f"{url}/files/upload", files={"file": ("lab.png", _lab_report_png(), "image/png")},
                    data={"user": "patient-1"}, headers=h, timeout=30)
    assert up.status_code == 201, up.text
    files = [{"type": "image", "transfer_method": "local_file", "upload_file_id": up.json()["id"]},
             {"type": "document", "transfer_method": "remote_url", "url": "http://127.0.0.1:9/ignored.pdf"}]
    with httpx.stream("POST", f"{url}/workflows/run", json={"inputs": {}, "user": "patient-1", "files": files,
                                                            "response_mode": "streaming"},
                      headers=h, timeout=240) as s:
        events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: ")]
    finished = events[-1]
    assert finished["event"] == "workflow_finished" and finished["data"]["status"] == "succeeded", events[-3:]
    outputs = finished["data"]["outputs"]
    assert "Glucose 180" in outputs["report"][0] and outputs["pages"] == [1]  # the remote URL was filtered out
    llm = next(e for e in events if e["event"] == "node_finished" and e["data"]["node_id"] == "llm")
    prompt = llm["data"]["process_data"]["prompts"][-1]
    assert prompt["role"] == "user" and "Glucose 180" in prompt["text"]
    assert isinstance(outputs["summary"], str)


def test_a_file_id_never_uploaded_here_is_refused_before_the_run(stack) -> None:
    """(Another workspace's id: test_gateway_service_api; a forged one past the gateway: the
    orchestrator's test_files_it_cannot_or_may_not_read_fail_the_node_clearly.)"""
    _, key = app_with_key(stack, "workflow", FLOW, name="lab reader 2")
    h = {"Authorization": f"Bearer {key}"}
    unknown = "01a24db6-0000-7000-8000-000000000000"
    files = [{"type": "image", "transfer_method": "local_file", "upload_file_id": unknown}]
    r = httpx.post(f"{stack.gateway_url}/v1/workflows/run", json={"inputs": {}, "user": "u", "files": files,
                                                                 "response_mode": "blocking"}, headers=h, timeout=30)
    assert r.status_code == 400 and r.json()["field"] == "files.0.upload_file_id", r.text
