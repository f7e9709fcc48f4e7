"""Suggested questions after an answer: what reaches the model, and what comes back of its reply."""

from __future__ import annotations

import json

from loom_gateway.domain import model_calls, suggestions


class ScriptedModel:
    def __init__(self, reply: str) -> None:
        self.reply, self.calls = reply, []

    async def complete(self, model, prompt, *, json_schema, max_tokens, tenant_id):
        self.calls.append({"prompt": prompt, "json_schema": json_schema})
        return self.reply, 52


async def test_the_reply_is_held_to_a_schema_and_read_back() -> None:
    model = ScriptedModel('["Why is it so?", "And Lyon?", " What else? "]')
    questions, tokens = await suggestions.suggest(model, "m", [("q1", "a1"), ("q2", "a2")], "t")
    assert questions == ["Why is it so?", "And Lyon?", "What else?"] and tokens == 52
    call = model.calls[0]
    assert json.loads(call["json_schema"])["maxItems"] == suggestions.COUNT  # the grammar the engine enforces
    assert call["prompt"].startswith("User: q1\nAssistant: a1\nUser: q2\nAssistant: a2")


async def test_a_reply_cut_short_or_of_another_shape_gives_none() -> None:
    for reply in ('["Why is it', '{"q": "x"}', '"just text"'):
        assert (await suggestions.suggest(ScriptedModel(reply), "m", [("q", "a")], "t"))[0] == []


def test_the_feature_and_model_come_from_the_apps_dsl() -> None:
    doc = {"workflow": {"graph": {"nodes": [{"id": "s", "data": {"type": "start"}},
                                            {"id": "l", "data": {"type": "llm", "model": {"name": "qwen"}}}]},
                        "features": {"suggested_questions_after_answer": {"enabled": True}}}}
    assert suggestions.enabled(doc) and model_calls.app_model(doc) == "qwen"
    assert not suggestions.enabled({"workflow": {"graph": {}}}) and model_calls.app_model({}) is None
