"""What a tool-constrained generation says, read as it is generated.

Under tools the model writes one JSON object (see `tools.tool_schema`): a call
`{"name": ..., "arguments": ...}` or, with `auto`, an answer `{"content": "..."}`. Callers must
never see that envelope: an answer's text streams out as plain text while it is written (the
string's body, unescaped), a call comes out whole on the last delta with finish reason
`tool_calls`. A call cut short by `max_tokens` is not a call (its arguments would not parse):
it ends with finish reason `length`, no calls and no text, so a caller can tell it apart from
an answer and retry with a larger budget.

Every backend that constrains output itself (llama.cpp, vLLM) passes its deltas through
`read_tool_output`, so all transports (gRPC, the OpenAI and Ollama routes) get the same shape
as from a provider with native tool calling.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator

from loom_inference.engine.types import Delta, FinishReason
from loom_inference.prompting.tools import parse_tool_output

# The envelope's first key decides what follows; the grammar allows whitespace around tokens.
_HEAD = re.compile(r'\s*\{\s*"(content|name)"\s*:\s*("?)')


class ToolOutputReader:
    """Feed raw pieces; get back the answer text to show now. `finish` settles the end."""

    def __init__(self) -> None:
        self.raw = ""          # everything generated
        self.kind = ""         # "" until known, then "content" or "name" (a call)
        self._body = 0         # index in `raw` where the answer string's body starts
        self._read = 0         # index in `raw` up to which the body has been unescaped
        self._closed = False   # the answer string's closing quote was seen
        self.shown = ""        # answer text handed out so far

    def feed(self, piece: str) -> str:
        self.raw += piece
        if not self.kind:
            m = _HEAD.match(self.raw)
            if m is None or (m.group(1) == "content" and not m.group(2)):
                return ""  # the key or the opening quote is still to come
            self.kind = m.group(1)
            self._body = self._read = m.end()
        if self.kind != "content" or self._closed:
            return ""
        out = self._unescape_ready()
        self.shown += out
        return out

    def _unescape_ready(self) -> str:
        """The answer string's body from `_read` up to the last point that decodes on its own
        (an escape split across pieces waits for its end; so does half a surrogate pair)."""
        raw, i, end = self.raw, self._read, self._read
        while i < len(raw):
            c = raw[i]
            if c == '"':
                self._closed = True
                break
            if c != "\\":
                i += 1
                end = i
                continue
            if i + 1 >= len(raw):
                break
            if raw[i + 1] != "u":
                i += 2
                end = i
                continue
            if i + 6 > len(raw):
                break
            code = raw[i + 2:i + 6]
            if _hex(code) and 0xD800 <= int(code, 16) <= 0xDBFF:  # a pair: \uD83D\uDE00 decodes only whole
                if i + 12 > len(raw):
                    break
                i += 12
            else:
                i += 6
            end = i
        piece = raw[self._read:end]
        self._read = end
        if self._closed:
            self._read = len(raw)
        try:
            return json.loads(f'"{piece}"')
        except json.JSONDecodeError:
            return ""  # cannot happen under the grammar; the full parse at the end settles it

    def finish(self, reason: FinishReason) -> tuple[str, list, FinishReason]:
        """(text still to show, tool calls, finish reason) once the generation ended."""
        if reason != FinishReason.STOP:
            return "", [], reason  # cut (or aborted): an answer keeps what was shown, a call is dropped
        calls, content = parse_tool_output(self.raw)
        if calls:
            return "", calls, FinishReason.TOOL_CALLS
        if self.kind == "content" and content.startswith(self.shown):
            return content[len(self.shown):], [], reason
        # Not the envelope (a backend that ignored the grammar): the text as it came.
        return (self.raw if not self.shown else ""), [], reason


def _hex(s: str) -> bool:
    return len(s) == 4 and all(ch in "0123456789abcdefABCDEF" for ch in s)


async def read_tool_output(deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    """The deltas of a tool-constrained generation, with the envelope taken off (see above)."""
    reader = ToolOutputReader()
    async with contextlib.aclosing(deltas):
        async for d in deltas:
            d.text = reader.feed(d.text)
            if d.finished:
                rest, calls, reason = reader.finish(d.finish_reason)
                d.text += rest
                d.tool_calls, d.finish_reason = calls, reason
            if d.text or d.finished or d.token_ids:
                yield d
