"""One subject through the whole suite, and a whole report over one or two subjects.

A subject is what is judged: a model, reached directly (`direct`: inference's OpenAI API or a
remote provider) and/or through the gateway (`gateway`: an app's Dify API, or the gateway's
OpenAI API with an app key). TTFT is measured on every channel given, so the gateway's cost
shows as the difference; retention and tool calls run once, on the primary channel (direct
when given: it is the model being judged; else the gateway).

Subjects run one after another, never side by side: they may share the machine, and their
latencies must not disturb each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from loom_gateway.eval import suite as suites
from loom_gateway.eval.latency import measure_ttft
from loom_gateway.eval.metrics import Verdict
from loom_gateway.eval.retention import measure_retention
from loom_gateway.eval.suite import Suite, Thresholds
from loom_gateway.eval.targets import Target
from loom_gateway.eval.toolcalls import measure_tool_calls

SCHEMA = "loom.eval/1"


class TargetUnusable(RuntimeError):
    """A target failed its first request (unreachable, refused key, unknown model)."""


@dataclass
class Subject:
    label: str
    direct: Target | None = None
    gateway: Target | None = None

    @property
    def primary(self) -> tuple[str, Target]:
        if self.direct is not None:
            return "direct", self.direct
        assert self.gateway is not None, "a subject needs a direct or a gateway target"
        return "gateway", self.gateway

    def channels(self) -> list[tuple[str, Target]]:
        return [(name, t) for name, t in (("direct", self.direct), ("gateway", self.gateway)) if t is not None]

    async def aclose(self) -> None:
        for _, target in self.channels():
            await target.aclose()


def verdicts(result: dict, thresholds: Thresholds) -> list[dict]:
    """Each threshold the suite sets, against the matching measurement (TTFT: every channel, at
    concurrency 1, the seed's '< 500 ms is good')."""
    out: list[Verdict] = []
    t = thresholds
    for channel, levels in (result.get("ttft") or {}).items():
        single = levels.get("concurrency_1") or {}
        for q, limit in (("p50", t.ttft_p50_ms), ("p95", t.ttft_p95_ms), ("p99", t.ttft_p99_ms)):
            if limit is not None:
                out.append(Verdict(f"ttft_{q}_ms", channel, single.get(f"{q}_ms"), limit, False))
    ret = result.get("retention")
    if ret and t.retention_share_at_max_k is not None:
        out.append(Verdict("retention_share_at_max_k", ret["channel"], ret["share_at_max_k"],
                           t.retention_share_at_max_k, True))
    tools = result.get("tool_calls")
    if tools:
        for key, limit in (("parse_rate", t.tool_parse_rate), ("schema_valid_rate", t.tool_schema_valid_rate),
                           ("exact_match_rate", t.tool_exact_match_rate)):
            if limit is not None:
                out.append(Verdict(f"tool_{key}", tools["channel"], tools[key], limit, True))
    return [v.as_dict() for v in out]


async def run_subject(subject: Subject, suite: Suite, *, concurrency: int | None = None,
                      progress: Callable[[str], None] = lambda _: None) -> dict:
    result: dict = {"label": subject.label, "targets": {name: t.describe() for name, t in subject.channels()}}
    if suite.ttft is not None:
        result["ttft"] = {name: await measure_ttft(t, suite.ttft, concurrency, progress)
                          for name, t in subject.channels()}
    channel, target = subject.primary
    if suite.retention is not None:
        data = suites.load_retention(suites.resolve(suite, suite.retention.facts_file))
        result["retention"] = {"channel": channel,
                               **await measure_retention(target, suite.retention, data, progress)}
    if suite.tool_calls is not None:
        if target.supports_tools:
            cases = suites.load_tool_cases(suites.resolve(suite, suite.tool_calls.cases_file))
            result["tool_calls"] = {"channel": channel,
                                    **await measure_tool_calls(target, suite.tool_calls, cases, progress)}
        else:
            result["tool_calls_skipped"] = "an app's tools are its own: give a model (--model) to run tool-call cases"
    result["verdicts"] = verdicts(result, suite.thresholds)
    return result


async def preflight(subjects: list[Subject]) -> None:
    """One one-token request per channel before anything is measured: a typo in a model name or
    a wrong key is one clear error, not a report full of failed requests."""
    for subject in subjects:
        for channel, target in subject.channels():
            reply = await target.ask("Hi", 1)
            if reply.error:
                raise TargetUnusable(f"{subject.label} ({channel}, {target.describe()['base_url']}): {reply.error}")


async def run_report(subjects: list[Subject], suite: Suite, *, concurrency: int | None = None,
                     command: str = "", progress: Callable[[str], None] = lambda _: None) -> dict:
    await preflight(subjects)
    started = time.time()
    n = concurrency or (suite.ttft.concurrency if suite.ttft else None)
    report = {"schema": SCHEMA, "suite": {"name": suite.name, "description": suite.description, "concurrency": n},
              "command": command, "started_at": started,
              "thresholds": suite.thresholds.model_dump(exclude_none=True), "subjects": []}
    for subject in subjects:
        report["subjects"].append(await run_subject(subject, suite, concurrency=concurrency, progress=progress))
    report["finished_at"] = time.time()
    report["duration_s"] = round(report["finished_at"] - started, 1)
    return report
