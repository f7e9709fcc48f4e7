"""text.sentiment: VADER's lexicon score with a label, in process through the executor (so the
argument schema is enforced as for any call). Labels are asserted on clear cases, not scores."""

from __future__ import annotations

import pytest

from loom_tools.builtins import BuiltinRunner, catalog
from loom_tools.domain.executor import Executor
from loom_tools.domain.types import Call


@pytest.fixture
def executor() -> Executor:
    return Executor(None, {n: spec for n, (spec, _) in catalog().items()}, {"builtin": BuiltinRunner()}, None)


@pytest.mark.parametrize(("text", "label"), [
    ("My package arrived damaged and nobody answers. This is ridiculous, I am so angry!", "angry"),
    ("this is useless garbage, terrible", "angry"),
    ("Where is my order?", "neutral"),
    ("Thanks, great service!", "positive"),
    ("The box was a bit dented.", "neutral"),
])
async def test_sentiment_labels_clear_cases(executor, text, label) -> None:
    out = await executor.invoke(Call("t1", "text.sentiment", {"text": text}))
    assert out.ok, out.error_message
    r = out.result
    assert r["label"] == label and r["angry"] is (label == "angry")
    assert -1.0 <= r["compound"] <= 1.0 and set(r) == {"label", "compound", "negative", "neutral", "positive",
                                                       "angry"}


async def test_sentiment_orders_by_polarity(executor) -> None:
    scores = [(await executor.invoke(Call("t1", "text.sentiment", {"text": t}))).result["compound"]
              for t in ("I love it, wonderful!", "It is a box.", "I hate this, awful and broken!")]
    assert scores[0] > scores[1] > scores[2]


@pytest.mark.parametrize(("args", "field"), [({}, "text"), ({"text": 3}, "text"), ({"text": "x" * 20_001}, "text"),
                                             ({"text": "ok", "extra": 1}, "extra")])
async def test_sentiment_refuses_bad_arguments_naming_the_field(executor, args, field) -> None:
    out = await executor.invoke(Call("t1", "text.sentiment", args))
    assert not out.ok and out.error_code == "invalid_arguments" and field in (out.error_field + out.error_message)
