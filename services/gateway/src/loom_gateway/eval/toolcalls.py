"""Tool-call argument accuracy: each case offers its tools and its request, the model's call is
checked (checker.py), and the rates are reported separately, because they say different things:

    parse_rate          one call whose arguments parse as a JSON object (constrained decoding
                        makes this 100% on local engines)
    schema_valid_rate   ... that also validate against the called function's schema
    right_function_rate the expected function was called
    exact_match_rate    BFCL's AST check passed: right function, arguments right after normalisation

Each case's `error_type` is the checker's, or `transport` (the request failed) or
`cut_at_max_tokens` (no complete call before the suite's max_tokens: the budget, not the model's
syntax, is what failed; raise tool_calls.max_tokens if it shows up).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from loom_gateway.eval.checker import check_call
from loom_gateway.eval.metrics import rate
from loom_gateway.eval.suite import ToolCallSpec, ToolCase, ToolCaseSet
from loom_gateway.eval.targets import Target


def pick(cases: list[ToolCase], limit: int | None) -> list[ToolCase]:
    """The first `limit` cases taken round-robin across categories (file order within each), so
    a small suite still touches every domain; all of them without a limit."""
    if not limit or limit >= len(cases):
        return list(cases)
    queues: dict[str, list[ToolCase]] = defaultdict(list)
    for case in cases:
        queues[case.category].append(case)
    out: list[ToolCase] = []
    while len(out) < limit:
        for queue in queues.values():
            if queue and len(out) < limit:
                out.append(queue.pop(0))
    return out


async def measure_tool_calls(target: Target, spec: ToolCallSpec, cases: ToolCaseSet,
                             progress: Callable[[str], None] = lambda _: None) -> dict:
    chosen = pick(cases.cases, spec.limit)
    functions = {f.name: f for f in cases.functions}
    gate = asyncio.Semaphore(spec.concurrency)

    async def run(case: ToolCase) -> dict:
        tools = [functions[name].model_dump() for name in case.tools]
        async with gate:
            reply = await target.ask(case.request, spec.max_tokens, tools=tools, tool_choice=spec.tool_choice)
        verdict = check_call(reply.tool_calls, case, functions)
        kind = verdict.error_type
        if reply.error:
            kind = "transport"
        elif not verdict.parsed and reply.finish_reason == "length":
            kind = "cut_at_max_tokens"  # the suite's budget ran out before the call was complete
        return {"id": case.id, "category": case.category, "parsed": verdict.parsed,
                "schema_valid": verdict.schema_valid, "right_function": verdict.right_function,
                "exact": verdict.exact, "error_type": kind,
                "error": reply.error or verdict.error,
                "call": [{"name": c.name, "arguments": c.arguments[:1000]} for c in reply.tool_calls],
                "text": reply.text[:300]}

    results = await asyncio.gather(*(run(c) for c in chosen))
    progress(f"tool calls {target.label}: {len(results)} cases done")
    by_category: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_category[r["category"]].append(r)
    errors: dict[str, int] = defaultdict(int)
    for r in results:
        if r["error_type"]:
            errors[r["error_type"]] += 1
    return {"cases": len(results), "tool_choice": spec.tool_choice,
            "parse_rate": rate(r["parsed"] for r in results),
            "schema_valid_rate": rate(r["schema_valid"] for r in results),
            "right_function_rate": rate(r["right_function"] for r in results),
            "exact_match_rate": rate(r["exact"] for r in results),
            "by_category": {c: {"cases": len(rs), "exact_match_rate": rate(r["exact"] for r in rs),
                                "schema_valid_rate": rate(r["schema_valid"] for r in rs)}
                            for c, rs in sorted(by_category.items())},
            "error_types": dict(sorted(errors.items())), "results": results}
