"""Prompt-prefix reuse: which tokens' KV each idle slot still holds, and where a new prompt
can start from.

When a sequence ends, its KV cells are not wiped: the slot goes idle still holding the
prompt and answer it computed. A chat's next turn (the same history plus one message), a
workflow's fixed system prompt, or a retry resend mostly the same tokens, so a new sequence
starts from the longest prefix any slot holds and computes only the rest: it continues in that
idle slot when it reuses most of it, else the prefix is shared into another slot (llama.cpp's
unified KV cache lets one cell belong to several sequences, `llama_memory_seq_cp`: nothing is
copied), which is also how a running sequence's computed prompt is shared.

Idle slots are evicted least recently used first when the cells are needed (admission
control counts them), and a prompt always recomputes at least its last token, whose logits
give the first sampled token.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class Placement:
    """Where a new sequence goes and how much of its prompt is already computed there."""

    slot: int
    reuse: int                  # prompt tokens whose KV the slot will hold before the first step
    trim_from: int              # drop the slot's cells from this position on (0 = the whole slot)
    share_from: int = -1        # a slot whose first `reuse` positions are shared in (-1: none)


class PrefixCache:
    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._idle: OrderedDict[int, list[int]] = OrderedDict()  # slot -> tokens in its cells, LRU first

    @property
    def resident_tokens(self) -> int:
        return sum(len(t) for t in self._idle.values())

    def holds(self, slot: int) -> bool:
        return slot in self._idle

    def keep(self, slot: int, tokens: list[int]) -> None:
        """A sequence ended in `slot` and its cells hold `tokens`: keep them for reuse."""
        if self.enabled and tokens:
            self._idle[slot] = tokens
            self._idle.move_to_end(slot)

    def forget(self, slot: int) -> bool:
        return self._idle.pop(slot, None) is not None

    def evict_lru(self, keep: set[int] = frozenset()) -> int | None:
        """Give up the least recently used idle slot's cells (not one in `keep`, a prefix being
        shared this step); returns the slot, whose cells must go, or None."""
        for slot in self._idle:
            if slot not in keep:
                del self._idle[slot]
                return slot
        return None

    def place(self, prompt: list[int], free_slots: list[int], running: dict[int, list[int]],
              sharing: set[int] = frozenset()) -> Placement | None:
        """Pick a free slot for `prompt`. `running` maps a running slot to its computed prompt
        tokens; `sharing` are idle slots whose cells this step already shares into another slot:
        they may be shared again but not overwritten (the runner drops cells before it shares).
        None: every free slot is such a source; the sequence waits for the next step."""
        limit = len(prompt) - 1  # the last prompt token is always computed: it yields the first logits
        source, best = -1, 0
        if self.enabled:
            holders = {**self._idle, **running}  # an idle slot is always a free one
            for slot, tokens in holders.items():
                n = min(common_prefix(tokens, prompt), limit)
                if n > best:
                    source, best = slot, n
        targets = [s for s in free_slots if s not in sharing and s != source]
        # Continue in the idle slot itself when most of what it holds is reused (a chat's next
        # turn), or when sharing would cost another slot's cache; otherwise share its prefix
        # into an empty slot and keep it whole for a later prompt that matches more of it.
        in_place = best and source in self._idle and source not in sharing
        if in_place and (2 * best >= len(self._idle[source]) or all(s in self._idle for s in targets)):
            self.forget(source)
            return Placement(source, best, best)
        if not targets:
            return None
        slot = self._emptiest(targets)
        self.forget(slot)
        return Placement(slot, best, 0, source)  # no match: best 0, source -1 (share nothing)

    def _emptiest(self, slots: list[int]) -> int:
        """A slot holding nothing, else the least recently used one."""
        for slot in slots:
            if slot not in self._idle:
                return slot
        lru_order = list(self._idle)
        return min(slots, key=lru_order.index)
