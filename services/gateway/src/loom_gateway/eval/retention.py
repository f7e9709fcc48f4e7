"""Multi-turn context retention: a fact is stated at turn 1 and asked for at turn k, with
k - 2 distractor turns between (k = 1: the fact and the question in one message, the in-context
baseline; k = 2: asked right after). Every turn is a real turn: the model answers each, and its
answers stay in the conversation (client-side for a model, server-side for an app).

A fact counts as recalled when any of its accepted answers appears in the reply at turn k,
both folded (case, whitespace, punctuation), after any verbatim echo of the fact's statement is
removed from the reply (a base model copies earlier turns back; that is not recall). Answers
are distinctive tokens (a number, a rare name) so that a chance hit is unlikely, and the
question never contains its answer (checked on load).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from loom_gateway.eval.metrics import rate
from loom_gateway.eval.suite import Fact, RetentionData, RetentionSpec
from loom_gateway.eval.targets import Target

_FOLD = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    return _FOLD.sub(" ", text.casefold()).strip()


def recalled(reply: str, answers: list[str], statement: str = "") -> bool:
    """An accepted answer in the reply, once any verbatim echo of the fact's statement is taken
    out: a model that repeats the conversation back (base models do) has not answered."""
    padded = f" {fold(reply)} "
    if statement:
        padded = padded.replace(f" {fold(statement)} ", " ")
    return any(f" {fold(a)} " in padded for a in answers)


def script(fact: Fact, k: int, distractors: list[str], offset: int) -> list[str]:
    """The user turns of one conversation: the fact at turn 1, the question at turn k."""
    if k == 1:
        return [f"{fact.statement} {fact.question}"]
    middle = [distractors[(offset + i) % len(distractors)] for i in range(k - 2)]
    return [fact.statement, *middle, fact.question]


async def _one(target: Target, fact: Fact, k: int, data: RetentionData, offset: int, max_tokens: int) -> dict:
    conv = target.conversation()
    reply = None
    for text in script(fact, k, data.distractors, offset):
        reply = await conv.say(text, max_tokens)
        if reply.error:
            return {"fact": fact.id, "k": k, "recalled": False, "error": reply.error, "reply": ""}
    assert reply is not None
    return {"fact": fact.id, "k": k, "recalled": recalled(reply.text, fact.answers, fact.statement), "error": "",
            "reply": reply.text[:300]}


async def measure_retention(target: Target, spec: RetentionSpec, data: RetentionData,
                            progress: Callable[[str], None] = lambda _: None) -> dict:
    facts = data.facts[: spec.facts] if spec.facts else data.facts
    gate = asyncio.Semaphore(spec.concurrency)

    async def run(fact: Fact, k: int, offset: int) -> dict:
        async with gate:
            return await _one(target, fact, k, data, offset, spec.reply_max_tokens)

    jobs = [run(f, k, i * 7 + k) for i, f in enumerate(facts) for k in spec.turns]
    results = await asyncio.gather(*jobs)
    progress(f"retention {target.label}: {len(results)} conversations done")
    per_k = {}
    for k in spec.turns:
        rows = [r for r in results if r["k"] == k]
        per_k[str(k)] = {"asked": len(rows), "recalled": sum(r["recalled"] for r in rows),
                         "errors": sum(bool(r["error"]) for r in rows), "share": rate(r["recalled"] for r in rows)}
    return {"turns": spec.turns, "facts": [f.id for f in facts], "per_k": per_k,
            "share_at_max_k": per_k[str(max(spec.turns))]["share"], "conversations": results}
