"""`loom eval` end to end.

- The small suite on the real bundled model through a real inference process (its OpenAI API),
  with `--compare` against a second model that the same inference process routes to a SCRIPTED
  OpenAI-compatible provider on loopback (named as such: it is not a model; it answers each
  tool-call case with the case's own reference call and each retention question with its answer,
  so its figures are known: 100% exact match, 100% recall). The assertions are on
  structure, not quality: the bundled 270M is a base model.
- Through the gateway: an app's Dify API (real gateway, NATS and Postgres; the scripted
  orchestrator stand-in of gateway_testkit answers the runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from gateway_testkit import make_app

from loom_common.devstack import infra
from loom_common.testing import ScriptedChat
from loom_gateway.eval import suite as suites
from loom_gateway.eval.checker import reference_arguments
from loom_gateway.eval.runner import Subject, run_report
from loom_gateway.eval.targets import DifyAppTarget

LOOM = str(Path(sys.executable).parent / "loom")


def _provider_script() -> Callable[[dict], tuple[list[dict], str]]:
    """The compare model's replies: each tool case's expected call, each fact's answer."""
    suite = suites.load_suite("full")
    cases = suites.load_tool_cases(suites.resolve(suite, suite.tool_calls.cases_file))
    calls = {c.request: (c.expected.name, reference_arguments(c.expected.arguments)) for c in cases.cases}
    facts = suites.load_retention(suites.resolve(suite, suite.retention.facts_file)).facts

    def script(body: dict) -> tuple[list[dict], str]:
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        if body.get("tools"):
            name, args = calls[users[-1]]
            return [{"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                     "function": {"name": name, "arguments": json.dumps(args)}}]}], "tool_calls"
        asked = [f for f in facts if f.question in users[-1]]  # a fact's question gets its answer
        return [{"content": f"It is {asked[0].answers[0]}." if asked else "Noted."}], "stop"

    return script


@pytest.fixture
def scripted_provider():
    provider = ScriptedChat(_provider_script())
    yield provider
    provider.close()


def _check_subject(subject: dict, small: suites.Suite) -> None:
    assert set(subject) >= {"label", "targets", "ttft", "retention", "tool_calls", "verdicts"}
    levels = subject["ttft"]["direct"]
    assert set(levels) == {"concurrency_1", f"concurrency_{small.ttft.concurrency}"}
    for lv in levels.values():
        assert set(lv) >= {"concurrency", "requests", "errors", "p50_ms", "p95_ms", "p99_ms", "samples_ms"}
        assert lv["errors"] == 0 and len(lv["samples_ms"]) == lv["requests"]
        assert lv["p50_ms"] <= lv["p95_ms"] <= lv["p99_ms"]
    ret = subject["retention"]
    assert ret["turns"] == small.retention.turns
    assert set(ret["per_k"]) == {str(k) for k in small.retention.turns}
    assert all(cell["asked"] == small.retention.facts and cell["errors"] == 0 for cell in ret["per_k"].values())
    tools = subject["tool_calls"]
    assert tools["cases"] == small.tool_calls.limit == len(tools["results"])
    for key in ("parse_rate", "schema_valid_rate", "right_function_rate", "exact_match_rate"):
        assert 0.0 <= tools[key] <= 1.0
    assert {v["metric"] for v in subject["verdicts"]} >= {"ttft_p50_ms", "tool_parse_rate"}


@pytest.mark.slow
@pytest.mark.integration
def test_small_suite_on_the_bundled_model_compared_with_a_scripted_provider(run_service, scripted_provider,
                                                                            tmp_path):
    config = tmp_path / "inference.toml"
    config.write_text(f'[[models]]\nname = "scripted"\nbackend = "openai"\n'
                      f'url = "http://127.0.0.1:{scripted_provider.port}"\n')
    inference = run_service("inference", timeout_s=180, env={
        "LOOM_INFERENCE_GRPC_PORT": str(infra.free_port()), "LOOM_INFERENCE_CONFIG": str(config),
        "LOOM_LOG_LEVEL": "WARNING"})
    out = tmp_path / "report"
    done = subprocess.run([LOOM, "eval", "--model", "gemma3:270m", "--compare", "scripted", "--suite", "small",
                           "--base-url", f"{inference.base_url}/v1", "--out", str(out),
                           "--timeout", "1200"],  # a tool call's stream is silent until the call is whole
                          capture_output=True, text=True, timeout=1200, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr[-3000:] + inference.log()[-2000:]
    assert "Tool-call arguments" in done.stdout and "Context retention" in done.stdout

    report = json.loads((out / "report.json").read_text())
    small = suites.load_suite("small")
    assert report["schema"] == "loom.eval/1" and report["suite"]["name"] == "small"
    assert [s["label"] for s in report["subjects"]] == ["gemma3:270m", "scripted"]
    bundled, scripted = report["subjects"]
    for subject in (bundled, scripted):
        _check_subject(subject, small)
    # Constrained decoding: every call of the bundled model that is complete parses and names one
    # of the offered tools (a call the suite's max_tokens cut short is reported as such). Schema
    # validity is not asserted: the grammar does not carry numeric bounds (minimum/maximum).
    offered = {c.id: c.tools for c in suites.load_tool_cases(suites.resolve(small, "tool_calls.yaml")).cases}
    for r in bundled["tool_calls"]["results"]:
        assert r["parsed"] or r["error_type"] == "cut_at_max_tokens", r
        assert all(call["name"] in offered[r["id"]] for call in r["call"]), r
    # The scripted provider's answers are known, through inference's remote route and back.
    assert scripted["tool_calls"]["exact_match_rate"] == 1.0
    assert all(cell["share"] == 1.0 for cell in scripted["retention"]["per_k"].values())
    assert scripted_provider.requests

    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 5  # TTFT, retention curve and grid, tools x2
    for label in ("gemma3:270m", "scripted", "Time to first token", "Multi-turn context retention",
                  "Tool-call argument accuracy"):
        assert label in page


async def test_through_the_gateway_an_apps_dify_api(gateway, admin, orchestrator, tmp_path):
    """TTFT and retention through the gateway's Dify API: conversations carried by
    conversation_id, each turn a real run request (the scripted orchestrator answers)."""
    _, key = await make_app(gateway.client, admin, "chat")
    small = suites.load_suite("small")
    small.tool_calls = small.tool_calls.model_copy(update={"limit": 2})
    target = DifyAppTarget(gateway.base_url, key, label="app")
    try:
        report = await run_report([Subject("app", gateway=target)], small)
    finally:
        await target.aclose()
    subject = report["subjects"][0]
    levels = subject["ttft"]["gateway"]
    assert all(lv["errors"] == 0 and lv["p50_ms"] is not None for lv in levels.values())
    assert subject["retention"]["channel"] == "gateway"
    assert all(c["error"] == "" for c in subject["retention"]["conversations"])
    # Every turn of a conversation went to the same conversation.
    turns_per_conversation = {}
    for req in orchestrator.requests:
        turns_per_conversation[req.conversation_id] = turns_per_conversation.get(req.conversation_id, 0) + 1
    assert max(turns_per_conversation.values()) == max(small.retention.turns)
    assert "tool_calls" not in subject and "app's tools" in subject["tool_calls_skipped"]
