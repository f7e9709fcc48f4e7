"""How a dataset's documents are cleaned and split (Dify's "process rule"), validated once.

Sizes count tokens of the embedding model's own tokenizer, so a chunk fits the model's window:
all-minilm:l6-v2 reads at most 256 tokens (special tokens included) and silently drops the
rest, hence the default of 240.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_SEPARATORS = ["\n\n", "\n", ". ", " ", ""]


class ChunkingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # automatic = defaults; custom = the fields below; hierarchical = parent-child chunks.
    mode: Literal["automatic", "custom", "hierarchical"] = "automatic"
    remove_extra_spaces: bool = True
    remove_urls_emails: bool = False
    separators: list[str] = Field(default_factory=lambda: list(DEFAULT_SEPARATORS))
    max_tokens: int = Field(240, ge=16, le=8192)
    chunk_overlap: int = Field(24, ge=0)
    # hierarchical only: parents are split with the settings above ("paragraph") or are the
    # whole document ("full-doc"); the children, the indexed and embedded chunks, with these.
    parent_mode: Literal["paragraph", "full-doc"] = "paragraph"
    subchunk_separators: list[str] = Field(default_factory=lambda: ["\n", ". ", " ", ""])
    subchunk_max_tokens: int = Field(96, ge=8, le=8192)
    subchunk_chunk_overlap: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _overlaps_fit(self) -> ChunkingConfig:
        if self.chunk_overlap >= self.max_tokens:
            raise ValueError("chunk_overlap must be smaller than max_tokens")
        if self.subchunk_chunk_overlap >= self.subchunk_max_tokens:
            raise ValueError("subchunk_chunk_overlap must be smaller than subchunk_max_tokens")
        if not self.separators or not self.subchunk_separators:
            raise ValueError("separators must not be empty")
        return self

    @property
    def hierarchical(self) -> bool:
        return self.mode == "hierarchical"
