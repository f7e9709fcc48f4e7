"""A reasoning model's thinking, taken apart from its answer.

Reasoning models (Qwen 3, DeepSeek-R1, ...) write `<think> ... </think>` before the answer.
Ollama returns that text as `thinking` (message.thinking on /api/chat), OpenAI-compatible
servers as `reasoning_content`; the answer text never carries the tags. Tags may be split
across tokens, so text that may begin a tag is held back until it is known.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from loom_inference.engine.types import Delta

OPEN, CLOSE = "<think>", "</think>"
REASONING_FAMILIES = frozenset({"qwen3", "qwen3moe", "deepseek2", "gpt-oss"})


def is_reasoning_model(metadata: dict, chat_template: str) -> bool:
    """A model that thinks: a reasoning family, or a chat template that speaks of <think>."""
    return metadata.get("general.architecture", "") in REASONING_FAMILIES or OPEN in chat_template


def _held(text: str, tag: str) -> int:
    """How many trailing characters of `text` could be the start of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkingSplitter:
    def __init__(self) -> None:
        self.state = "start"   # start -> thinking -> after (strip the gap) -> answer; or start -> answer
        self.buf = ""

    def feed(self, text: str) -> tuple[str, str]:
        """(thinking, answer) that `text` completes."""
        self.buf += text
        thinking, answer = "", ""
        if self.state == "start":
            head = self.buf.lstrip()
            if len(head) < len(OPEN) and OPEN.startswith(head):
                return "", ""  # maybe the tag, maybe not: wait
            if head.startswith(OPEN):
                self.state, self.buf = "thinking", head[len(OPEN):]
            else:
                self.state = "answer"
        if self.state == "thinking":
            end = self.buf.find(CLOSE)
            if end < 0:
                keep = _held(self.buf, CLOSE)
                thinking, self.buf = self.buf[:len(self.buf) - keep], self.buf[len(self.buf) - keep:]
                return thinking, ""
            thinking, self.buf, self.state = self.buf[:end], self.buf[end + len(CLOSE):], "after"
        if self.state == "after":
            self.buf = self.buf.lstrip()
            if not self.buf:
                return thinking, ""
            self.state = "answer"
        answer, self.buf = self.buf, ""
        return thinking, answer

    def flush(self) -> tuple[str, str]:
        rest, self.buf = self.buf, ""
        return (rest, "") if self.state == "thinking" else ("", rest)


async def split_thinking(stream: AsyncIterator[Delta], *, keep: bool = True) -> AsyncIterator[Delta]:
    """Each delta's text split into `thinking` and answer `text`; keep=False drops the thinking."""
    splitter = ThinkingSplitter()
    try:
        async for d in stream:
            thinking, d.text = splitter.feed(d.text)
            if d.finished:
                more_thinking, tail = splitter.flush()
                thinking, d.text = thinking + more_thinking, d.text + tail
            d.thinking = thinking if keep else ""
            yield d
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
