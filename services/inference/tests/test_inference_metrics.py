"""/metrics carries the engine's histograms, counters and gauges, named like vLLM's, per model."""

from __future__ import annotations

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAMES = ["loom_inference_time_to_first_token_seconds_bucket", "loom_inference_inter_token_latency_seconds_bucket",
         "loom_inference_e2e_request_latency_seconds_bucket", "loom_inference_request_queue_time_seconds_bucket",
         "loom_inference_request_prefill_time_seconds_bucket", "loom_inference_prompt_tokens_total",
         "loom_inference_generation_tokens_total", "loom_inference_num_requests_running",
         "loom_inference_num_requests_waiting", "loom_inference_request_success_total"]


def test_inference_metrics_named_like_vllm(inference_service) -> None:
    r = httpx.post(inference_service.base_url + "/api/generate",
                   json={"model": "gemma3:270m", "prompt": "Hello", "stream": False,
                         "options": {"temperature": 0, "num_predict": 5}}, timeout=120)
    assert r.status_code == 200 and r.json()["eval_count"] == 5
    text = httpx.get(inference_service.base_url + "/metrics").text
    for name in NAMES:
        assert any(line.startswith(name + "{") and 'model_name="gemma3:270m"' in line
                   for line in text.splitlines()), name
    generated = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("loom_inference_generation_tokens_total{")]
    assert sum(generated) >= 5
