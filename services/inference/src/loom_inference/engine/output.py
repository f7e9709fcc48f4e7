"""Turns sampled token ids into text, outside the step loop's hot path: incremental UTF-8
decoding (a multi-byte character may span tokens) and stop strings (text that might be the
start of a stop string is held back until it is known not to be one)."""

from __future__ import annotations

import codecs
from collections.abc import Callable


class Detokenizer:
    def __init__(self, token_bytes: Callable[[int], bytes], stop: list[str]) -> None:
        self._bytes = token_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = [s for s in stop if s]
        self._held = ""          # decoded text not yet released (may begin a stop string)
        self.text = ""           # everything released so far
        self.stopped = False

    def add(self, token: int) -> str:
        """Feed one token; return the text that can be released now ("" if held back)."""
        self._held += self._utf8.decode(self._bytes(token))
        if not self._stop:
            out, self._held = self._held, ""
            self.text += out
            return out
        for s in self._stop:
            at = self._held.find(s)
            if at >= 0:
                out = self._held[:at]
                self._held, self.stopped = "", True
                self.text += out
                return out
        keep = self._longest_stop_prefix_suffix()
        out = self._held[: len(self._held) - keep]
        self._held = self._held[len(self._held) - keep:]
        self.text += out
        return out

    def flush(self) -> str:
        out = "" if self.stopped else self._held + self._utf8.decode(b"", final=True)
        self._held = ""
        self.text += out
        return out

    def _longest_stop_prefix_suffix(self) -> int:
        """Length of the longest tail of the held text that is a proper prefix of a stop string."""
        best = 0
        for s in self._stop:
            for n in range(min(len(s) - 1, len(self._held)), best, -1):
                if self._held.endswith(s[:n]):
                    best = n
                    break
        return best
