"""The tool envelope taken off a constrained generation (prompting/tool_output.py): answer text
streams as plain text while it is written, a call comes whole at the end, a call cut by
max_tokens is no call."""

from __future__ import annotations

import asyncio
import json

import pytest

from loom_inference.engine.types import Delta, FinishReason
from loom_inference.prompting.tool_output import ToolOutputReader, read_tool_output


def _run(pieces: list[str], reason: FinishReason = FinishReason.STOP) -> list[Delta]:
    async def deltas():
        for p in pieces[:-1]:
            yield Delta(text=p, token_ids=[1])
        yield Delta(text=pieces[-1], token_ids=[1], finish_reason=reason)

    async def collect():
        return [d async for d in read_tool_output(deltas())]

    return asyncio.run(collect())


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_an_answer_streams_as_plain_text_whatever_the_piece_boundaries(size) -> None:
    answer = 'Say "hi" \\ then\nwait: caf\u00e9 \U0001F600 \u00b5 {x}'
    raw = ' { "content" : ' + json.dumps(answer) + " }"
    assert '\\ud83d\\ude00' in json.dumps(answer)  # a surrogate pair that pieces may split
    out = _run(_pieces(raw, size))
    assert "".join(d.text for d in out) == answer
    assert out[-1].finish_reason == FinishReason.STOP and not out[-1].tool_calls
    assert all("content" not in d.text for d in out[:-1]) or size >= len(raw)  # the envelope never shows


def test_an_answer_is_shown_as_it_is_written_not_at_the_end() -> None:
    reader = ToolOutputReader()
    assert reader.feed('{"con') == ""
    assert reader.feed('tent": "') == ""
    assert reader.feed("Hel") == "Hel"
    assert reader.feed("lo\\") == "lo"      # the escape waits for its second half
    assert reader.feed('n"}') == "\n"
    assert reader.finish(FinishReason.STOP) == ("", [], FinishReason.STOP)


@pytest.mark.parametrize("size", [1, 4, 100])
def test_a_call_comes_whole_at_the_end_with_no_text(size) -> None:
    raw = '{"name": "math.eval", "arguments": {"expression": "2 + 3"}}'
    out = _run(_pieces(raw, size))
    assert "".join(d.text for d in out) == ""
    last = out[-1]
    assert last.finish_reason == FinishReason.TOOL_CALLS
    assert [(c.name, json.loads(c.arguments_json)) for c in last.tool_calls] == [("math.eval", {"expression": "2 + 3"})]


def test_a_call_cut_by_max_tokens_is_no_call_and_says_length() -> None:
    out = _run(_pieces('{ "name": "math.eval", "arguments": { "expression": "2 + 3 * sqrt(16) } } model', 6),
               FinishReason.LENGTH)
    assert "".join(d.text for d in out) == "" and not out[-1].tool_calls
    assert out[-1].finish_reason == FinishReason.LENGTH


def test_an_answer_cut_by_max_tokens_keeps_what_was_written() -> None:
    out = _run(['{"content": "The sea is', " wide and"], FinishReason.LENGTH)
    assert "".join(d.text for d in out) == "The sea is wide and"
    assert out[-1].finish_reason == FinishReason.LENGTH


def test_output_that_is_not_the_envelope_comes_through_as_it_was() -> None:
    assert "".join(d.text for d in _run(["plain", " words"])) == "plain words"
