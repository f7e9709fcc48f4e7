"""A dataset's settings through the knowledge API on the real stack (rag, inference with the
bundled embedding model, NATS, Postgres): its chunking (Dify's process_rule) and retrieval
method are set at creation and changed by PATCH, read back with the dataset, and a document
added without its own process_rule is split by the dataset's; bad values are 400s naming the
field, and a refused update changes nothing."""

from __future__ import annotations

import time

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

CUSTOM = {"mode": "custom", "rules": {"segmentation": {"separator": "\n", "max_tokens": 32, "chunk_overlap": 0},
                                      "pre_processing_rules": [{"id": "remove_extra_spaces", "enabled": True}]}}
# Twelve lines of about 20 tokens each: one chunk under the automatic rule (240 tokens), several under CUSTOM.
TEXT = "\n".join(f"Line {i}: the harbour ferry number {i} leaves the pier at {i} o'clock sharp every day."
                 for i in range(12))


def _completed(url: str, h: dict, batch: str) -> None:
    status: dict = {}
    for _ in range(240):
        status = httpx.get(f"{url}/documents/{batch}/indexing-status", headers=h).json()
        if status["data"][0]["indexing_status"] in ("completed", "error"):
            break
        time.sleep(0.5)
    assert status["data"][0]["indexing_status"] == "completed", status


def test_dataset_chunking_and_retrieval_method_are_settings(stack) -> None:
    key = httpx.post(stack.ws("/dataset-api-keys"), headers=stack.console).json()["token"]
    h = {"Authorization": f"Bearer {key}"}
    base = f"{stack.gateway_url}/v1/datasets"
    ds = httpx.post(base, json={"name": "Ferries", "retrieval_model": {"search_method": "hybrid_search"}},
                    headers=h, timeout=30).json()
    assert ds["retrieval_model_dict"]["search_method"] == "hybrid_search"
    assert ds["process_rule"]["mode"] == "automatic" and ds["doc_form"] == "text_model"
    url = f"{base}/{ds['id']}"

    def segments_of(name: str) -> int:
        created = httpx.post(f"{url}/document/create-by-text", json={"name": name, "text": TEXT}, headers=h,
                             timeout=30).json()
        _completed(url, h, created["batch"])
        doc = created["document"]["id"]
        return httpx.get(f"{url}/documents/{doc}/segments", params={"limit": 100}, headers=h).json()["total"]

    assert segments_of("automatic") == 1

    patched = httpx.patch(url, json={"process_rule": CUSTOM, "retrieval_model": {"search_method": "full_text_search"}},
                          headers=h, timeout=30)
    assert patched.status_code == 200, patched.text
    rule = patched.json()["process_rule"]
    assert rule["mode"] == "custom" and rule["rules"]["segmentation"] == {"separator": "\n", "max_tokens": 32,
                                                                           "chunk_overlap": 0}
    got = httpx.get(url, headers=h).json()
    assert got["process_rule"] == rule and got["retrieval_model_dict"]["search_method"] == "full_text_search"
    assert segments_of("custom") >= 6  # the dataset's rule: each line its own chunk or two

    for body, field in (
            ({"retrieval_model": {"search_method": "telepathy"}}, "retrieval_model.search_method"),
            ({"process_rule": {"mode": "custom", "rules": {"segmentation": {"max_tokens": "lots"}}}},
             "process_rule.rules.segmentation.max_tokens"),
            ({"process_rule": {"mode": "custom", "rules": {"segmentation": {"max_tokens": 4}}}},
             "process_rule.max_tokens"),  # rag's bounds: 16..8192
            ({"process_rule": {"mode": "custom", "rules": {"segmentation": {"max_tokens": 64, "chunk_overlap": 64}}}},
             "process_rule"),
            ({"process_rule": {"mode": "sideways"}}, "process_rule.mode"),
            ({"process_rule": {"mode": "custom", "rules": []}}, "process_rule.rules")):
        r = httpx.patch(url, json=body, headers=h, timeout=30)
        assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)
    after = httpx.get(url, headers=h).json()
    assert after["process_rule"] == rule and after["retrieval_model_dict"]["search_method"] == "full_text_search"
