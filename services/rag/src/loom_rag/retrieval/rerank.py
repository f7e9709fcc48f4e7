"""The optional rerank step, behind a protocol so a cross-encoder or an LLM judge can replace it.

`LexicalOverlapReranker` is the simple built-in one: it reorders candidates by how much of the
query's vocabulary they contain (token-set recall, blended with the incoming score), which lifts
exact-term matches that a fused rank left lower. It needs no model and adds well under a
millisecond.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from loom_rag.domain.models import Hit

_WORD = re.compile(r"\w[\w\-]*\w|\w", re.UNICODE)


class Reranker(Protocol):
    async def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]: ...


def _terms(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


class LexicalOverlapReranker:
    def __init__(self, weight: float = 0.5):
        self.weight = weight  # share of the new score that comes from term overlap

    async def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]:
        wanted = _terms(query)
        if not wanted:
            return list(hits)[:top_k]
        rescored = []
        for hit in hits:
            overlap = len(wanted & _terms(hit.content)) / len(wanted)
            rescored.append(replace(hit, score=(1 - self.weight) * hit.score + self.weight * overlap))
        rescored.sort(key=lambda h: (-h.score, h.segment_id))
        return rescored[:top_k]
