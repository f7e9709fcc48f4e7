"""Recursive splitting by separators, sizes and overlap counted in tokens.

The text is cut at the first separator (of an ordered list, coarse to fine: paragraphs, lines,
sentences, words) that occurs in it; a piece still larger than the budget is cut again with the
next separators; the empty separator last cuts on token boundaries. Small pieces are then merged
greedily into chunks of at most `max_tokens`, and each new chunk starts with the trailing pieces
of the previous one that fit in `overlap` tokens. Piece counts are summed rather than re-counted
(WordPiece counts are additive at the whitespace boundaries separators create), and each final
chunk is counted exactly once.

Parent-child ("hierarchical"): parents are split as above (or are the whole text) and each
parent is split again with the sub-chunk settings; children are indexed, and carry their parent.
"""

from __future__ import annotations

from loom_rag.domain.chunking import ChunkingConfig
from loom_rag.domain.models import Chunk
from loom_rag.domain.ports import Tokenizer


class RecursiveSplitter:
    def __init__(self, tokenizer: Tokenizer, separators: list[str], max_tokens: int, overlap: int):
        self.tok, self.separators, self.max_tokens, self.overlap = tokenizer, separators, max_tokens, overlap

    def split(self, text: str) -> list[str]:
        pieces = self._pieces(text, self.separators)
        return [c for c in self._merge(pieces) if c.strip()]

    def _pieces(self, text: str, separators: list[str]) -> list[tuple[str, int]]:
        """(piece, tokens) pairs, each piece within budget, in order; concatenated = text."""
        sep_index = next((i for i, s in enumerate(separators) if s == "" or s in text), None)
        if sep_index is None or separators[sep_index] == "":
            windows = self.tok.windows(text, self.max_tokens, 0)
            return list(zip(windows, self.tok.count(windows), strict=True))
        sep, finer = separators[sep_index], separators[sep_index + 1:] or [""]
        parts = text.split(sep)
        parts = [p + sep for p in parts[:-1]] + [parts[-1]]  # keep separators with the text
        parts = [p for p in parts if p]
        out: list[tuple[str, int]] = []
        for part, n in zip(parts, self.tok.count(parts), strict=True):
            out.extend([(part, n)] if n <= self.max_tokens else self._pieces(part, finer))
        return out

    def _merge(self, pieces: list[tuple[str, int]]) -> list[str]:
        chunks: list[str] = []
        current: list[tuple[str, int]] = []
        size = 0
        for piece, n in pieces:
            if current and size + n > self.max_tokens:
                chunks.append("".join(p for p, _ in current))
                # Carry the tail of this chunk over as the next chunk's overlap.
                while current and (size > self.overlap or size + n > self.max_tokens):
                    size -= current.pop(0)[1]
            current.append((piece, n))
            size += n
        if current:
            chunks.append("".join(p for p, _ in current))
        return chunks


def split_document(text: str, rule: ChunkingConfig, tokenizer: Tokenizer) -> list[Chunk]:
    """The chunks to index for a cleaned text, per the rule."""
    outer = RecursiveSplitter(tokenizer, rule.separators, rule.max_tokens, rule.chunk_overlap)
    if not rule.hierarchical:
        texts = [t.strip() for t in outer.split(text)]
        return [Chunk(t, n) for t, n in zip(texts, tokenizer.count(texts), strict=True) if t]
    parents = [text] if rule.parent_mode == "full-doc" else [t.strip() for t in outer.split(text)]
    inner = RecursiveSplitter(tokenizer, rule.subchunk_separators, rule.subchunk_max_tokens,
                              rule.subchunk_chunk_overlap)
    chunks: list[Chunk] = []
    for parent in parents:
        children = [t.strip() for t in inner.split(parent)]
        children = [c for c in children if c]
        chunks.extend(Chunk(c, n, parent) for c, n in zip(children, tokenizer.count(children), strict=True))
    return chunks
