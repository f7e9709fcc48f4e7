"""Prometheus metrics of the engine, named like vLLM's where they mean the same thing
(`vllm:time_to_first_token_seconds` -> `loom_inference_time_to_first_token_seconds`), all
labelled by `model_name`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LAT = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
_ITL = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 1.0, 2.5)

TTFT = Histogram("loom_inference_time_to_first_token_seconds", "Time to first token", ["model_name"], buckets=_LAT)
ITL = Histogram("loom_inference_inter_token_latency_seconds", "Time between two output tokens", ["model_name"],
                buckets=_ITL)
E2E = Histogram("loom_inference_e2e_request_latency_seconds", "Request latency, arrival to last token",
                ["model_name"], buckets=_LAT)
QUEUE = Histogram("loom_inference_request_queue_time_seconds", "Time waiting for a slot", ["model_name"],
                  buckets=_LAT)
PREFILL = Histogram("loom_inference_request_prefill_time_seconds", "Prompt processing time", ["model_name"],
                    buckets=_LAT)
DECODE = Histogram("loom_inference_request_decode_time_seconds", "First to last token", ["model_name"],
                   buckets=_LAT)
PROMPT_TOKENS = Counter("loom_inference_prompt_tokens", "Prompt tokens processed", ["model_name"])
PREFIX_CACHE_QUERIES = Counter("loom_inference_prefix_cache_queries", "Prompt tokens looked up in the prefix cache",
                               ["model_name"])
PREFIX_CACHE_HITS = Counter("loom_inference_prefix_cache_hits", "Prompt tokens found in the prefix cache",
                            ["model_name"])
GENERATION_TOKENS = Counter("loom_inference_generation_tokens", "Tokens generated", ["model_name"])
SUCCESS = Counter("loom_inference_request_success", "Finished requests", ["model_name", "finished_reason"])
RUNNING = Gauge("loom_inference_num_requests_running", "Requests holding a slot", ["model_name"])
WAITING = Gauge("loom_inference_num_requests_waiting", "Requests waiting for a slot", ["model_name"])
BATCH_TOKENS = Histogram("loom_inference_step_batch_tokens", "Tokens per decode step", ["model_name"],
                         buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
