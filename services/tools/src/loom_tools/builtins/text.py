"""Text utilities: statistics, case and whitespace transforms, regex extraction, truncation,
and a lexicon sentiment score (VADER) that works without any model."""

from __future__ import annotations

import functools
import re
from typing import Any

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from loom_tools.domain.types import ToolSpec
from loom_tools.errors import InvalidArguments

_TEXT = {"type": "string", "maxLength": 1_000_000}


def stats(args: dict[str, Any]) -> dict[str, Any]:
    t = args["text"]
    return {"characters": len(t), "words": len(t.split()), "lines": len(t.splitlines()),
            "bytes_utf8": len(t.encode())}


_TRANSFORMS = {"upper": str.upper, "lower": str.lower, "title": str.title, "strip": str.strip,
               "collapse_whitespace": lambda s: " ".join(s.split()), "reverse": lambda s: s[::-1]}


def transform(args: dict[str, Any]) -> dict[str, Any]:
    return {"text": _TRANSFORMS[args["operation"]](args["text"])}


def extract(args: dict[str, Any]) -> dict[str, Any]:
    try:
        pattern = re.compile(args["pattern"])
    except re.error as exc:
        raise InvalidArguments(f"argument 'pattern': {exc}", field="pattern") from exc
    # Python's re has no timeout: the pattern and text sizes are bounded by the schema instead.
    return {"matches": [m.group(0) for m in pattern.finditer(args["text"])][: args.get("limit", 100)]}


def truncate(args: dict[str, Any]) -> dict[str, Any]:
    t, n = args["text"], args["max_chars"]
    return {"text": t if len(t) <= n else t[: max(n - 1, 0)] + "…", "truncated": len(t) > n}


# VADER's compound score is in [-1, 1]; its authors call |score| >= 0.05 non-neutral. Below -0.5
# the text is strongly negative (insults, "furious", "ridiculous"): called angry here.
ANGRY_BELOW, NEGATIVE_BELOW, POSITIVE_ABOVE = -0.5, -0.05, 0.05
SENTIMENT_MAX_CHARS = 20_000


@functools.cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()  # reads its lexicon file once (~7,500 words)


def sentiment(args: dict[str, Any]) -> dict[str, Any]:
    scores = _analyzer().polarity_scores(args["text"])
    c = scores["compound"]
    label = ("angry" if c <= ANGRY_BELOW else "negative" if c <= NEGATIVE_BELOW
             else "positive" if c >= POSITIVE_ABOVE else "neutral")
    return {"label": label, "compound": c, "negative": scores["neg"], "neutral": scores["neu"],
            "positive": scores["pos"], "angry": label == "angry"}


TOOLS = [
    (ToolSpec("text.stats", "Count characters, words and lines of a text.", "builtin",
              {"type": "object", "properties": {"text": _TEXT}, "required": ["text"],
               "additionalProperties": False}), stats),
    (ToolSpec("text.transform", "Change case or whitespace of a text.", "builtin",
              {"type": "object", "properties": {"text": _TEXT, "operation": {"enum": sorted(_TRANSFORMS)}},
               "required": ["text", "operation"], "additionalProperties": False}), transform),
    (ToolSpec("text.extract", "Find all matches of a regular expression in a text.", "builtin",
              {"type": "object", "properties": {"text": {"type": "string", "maxLength": 100_000},
                                                "pattern": {"type": "string", "maxLength": 200},
                                                "limit": {"type": "integer", "minimum": 1, "maximum": 1000}},
               "required": ["text", "pattern"], "additionalProperties": False}), extract),
    (ToolSpec("text.truncate", "Shorten a text to at most max_chars characters.", "builtin",
              {"type": "object", "properties": {"text": _TEXT, "max_chars": {"type": "integer", "minimum": 1}},
               "required": ["text", "max_chars"], "additionalProperties": False}), truncate),
    (ToolSpec("text.sentiment", "Score a text's sentiment with the VADER lexicon: label angry | negative | "
              "neutral | positive, the compound score in [-1, 1] and the shares of each polarity.", "builtin",
              {"type": "object", "properties": {"text": {"type": "string", "maxLength": SENTIMENT_MAX_CHARS}},
               "required": ["text"], "additionalProperties": False}), sentiment),
]
