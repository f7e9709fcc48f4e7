"""Parsing an uploaded file without trusting it: `parse_isolated` runs `parsers.parse_untrusted`
in a child process under `loom_common.bounded` limits (memory, CPU, wall clock), so a PDF of a
million operators or a compression bomb costs one child, never rag's event loop (retrieval for
every tenant runs on it) nor its memory. Every failure is a BadDocument: the document goes to
`error` with the message at once, never redelivered.
"""

from __future__ import annotations

from dataclasses import dataclass

from loom_common.bounded import BoundedFailure, Bounds, call_bounded
from loom_rag.domain.errors import BadDocument


@dataclass(frozen=True)
class ParseLimits:
    memory_mb: int = 1024
    cpu_s: int = 30
    wall_s: float = 60.0
    max_text_chars: int = 5_000_000          # ~2,500 pages of prose
    max_unzipped_bytes: int = 200 * 2**20    # all members of a DOCX, inflated


async def parse_isolated(data: bytes, name: str, mime_type: str, limits: ParseLimits) -> str:
    options = {"name": name, "mime_type": mime_type, "max_text_chars": limits.max_text_chars,
               "max_unzipped_bytes": limits.max_unzipped_bytes}
    # The text comes back as JSON: up to ~6 bytes per character for escaped non-ASCII.
    bounds = Bounds(memory_mb=limits.memory_mb, cpu_s=limits.cpu_s, wall_s=limits.wall_s,
                    max_output_bytes=limits.max_text_chars * 6 + 1024)
    try:
        return await call_bounded("loom_rag.ingest.parsers:parse_untrusted", data, options, bounds)
    except BoundedFailure as exc:
        raise BadDocument(f"{name}: {exc.message}") from None
