"""Arithmetic on a model's outputs that needs no model library: log-probabilities from raw
logits, the size of a KV cache from GGUF metadata, unit-length vectors."""

from __future__ import annotations

import math

import numpy as np


def log_probs(logits: np.ndarray, token: int, top: int) -> tuple[float, list[tuple[int, float]]]:
    """log-softmax of the raw logits: `token`'s, and the `top` most likely (best first)."""
    peak = float(logits.max())
    log_z = peak + math.log(float(np.exp(logits - peak, dtype=np.float64).sum()))
    best: list[tuple[int, float]] = []
    if top > 0:
        ids = np.argpartition(logits, -top)[-top:]
        ids = ids[np.argsort(-logits[ids])]
        best = [(int(t), float(logits[t]) - log_z) for t in ids]
    return float(logits[token]) - log_z, best


def kv_cache_bytes(meta: dict, n_ctx: int, n_layer: int, n_head_kv: int, head_dim: int) -> int:
    """f16 K and V for every cell of every layer (the key/value widths from the GGUF when set)."""
    arch = meta.get("general.architecture", "")
    k = int(meta.get(f"{arch}.attention.key_length", head_dim))
    v = int(meta.get(f"{arch}.attention.value_length", head_dim))
    return n_ctx * n_layer * n_head_kv * (k + v) * 2


def normalized(vec: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]
