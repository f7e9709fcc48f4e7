"""Weighted reciprocal rank fusion (Cormack et al., 2009) of ranked lists.

Each list contributes weight / (k + rank) for every hit it holds (rank from 1). Ranks, not raw
scores, are fused, because a cosine similarity and a ts_rank are not on one scale. The fused
score is divided by the best score possible (rank 1 in every list), so it lies in 0..1 and a
score threshold means the same whatever the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from loom_rag.domain.models import Hit

RRF_K = 60


def reciprocal_rank_fusion(lists: Sequence[Sequence[Hit]], weights: Sequence[float], *, k: int = RRF_K) -> list[Hit]:
    if len(lists) != len(weights):
        raise ValueError("one weight per list")
    total = sum(weights)
    if total <= 0:
        weights, total = [1.0] * len(lists), float(len(lists))
    best = total / (k + 1)
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for hits, weight in zip(lists, weights, strict=True):
        for rank, hit in enumerate(hits, start=1):
            scores[hit.segment_id] = scores.get(hit.segment_id, 0.0) + weight / (k + rank)
            first.setdefault(hit.segment_id, hit)
    fused = [replace(first[sid], score=score / best) for sid, score in scores.items()]
    fused.sort(key=lambda h: (-h.score, h.segment_id))
    return fused
