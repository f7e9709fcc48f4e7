"""A conversation named by the model (Dify's auto_generate rename): what reaches the model,
and what is made of its reply or of its absence."""

from __future__ import annotations

import json

import pytest

from loom_gateway.domain import naming
from loom_gateway.domain.errors import ApiError, BadRequest


class ScriptedModel:
    def __init__(self, reply: str = "", error: ApiError | None = None) -> None:
        self.reply, self.error, self.calls = reply, error, []

    async def complete(self, model, prompt, *, json_schema, max_tokens, tenant_id):
        self.calls.append({"model": model, "prompt": prompt, "schema": json.loads(json_schema),
                           "max_tokens": max_tokens})
        if self.error:
            raise self.error
        return self.reply, 21


async def test_the_reply_is_held_to_a_short_string_and_read_back() -> None:
    model = ScriptedModel('"  Weekend   trip\\n to Lyon "')
    name, tokens = await naming.name_conversation(model, "gemma3:270m", "Plan my trip to Lyon\nin May", "t1")
    assert (name, tokens) == ("Weekend trip to Lyon", 21)
    call = model.calls[0]
    assert call["schema"] == {"type": "string", "minLength": 1, "maxLength": 40}
    assert call["max_tokens"] >= 2 * 40 and call["prompt"].startswith("Plan my trip to Lyon\nin May\n\n")


async def test_nothing_usable_or_no_model_falls_back_to_the_querys_first_line() -> None:
    for model in (ScriptedModel('"   "'), ScriptedModel("not json"),
                  ScriptedModel(error=ApiError("inference is unavailable", status=503))):
        assert (await naming.name_conversation(model, "m", "Plan my trip\nin May", "t"))[0] == "Plan my trip"


async def test_a_refusal_of_the_request_itself_is_not_hidden() -> None:
    with pytest.raises(BadRequest):
        await naming.name_conversation(ScriptedModel(error=BadRequest("model: unknown")), "m", "q", "t")
