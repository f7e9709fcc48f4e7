"""Text and page count of an untrusted file, read in a limited child process:
`loom_common.documents.extract_untrusted` (OCR included) through `loom_common.bounded`.

OCR loads onnxruntime and OpenCV in the child, which reserve far more address space than they
touch: the memory bound here is an address-space cap (RLIMIT_AS), so it is set higher than
for text parsing, and the CPU bound covers a few scanned pages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from loom_common.bounded import BoundedFailure, Bounds, call_bounded
from loom_common.documents import UnreadableDocument


@dataclass(frozen=True)
class ExtractLimits:
    memory_mb: int = 3072
    cpu_s: int = 60
    wall_s: float = 120.0
    max_text_chars: int = 1_000_000
    max_unzipped_bytes: int = 200 * 2**20


@dataclass(frozen=True)
class Extracted:
    text: str
    pages: int


async def extract_isolated(data: bytes, name: str, mime_type: str = "",
                           limits: ExtractLimits = ExtractLimits()) -> Extracted:
    """The file's text; UnreadableDocument (naming the file) for anything that cannot be read."""
    options = {"name": name, "mime_type": mime_type, "max_text_chars": limits.max_text_chars,
               "max_unzipped_bytes": limits.max_unzipped_bytes}
    bounds = Bounds(memory_mb=limits.memory_mb, cpu_s=limits.cpu_s, wall_s=limits.wall_s,
                    max_output_bytes=limits.max_text_chars * 6 + 1024)
    try:
        report = json.loads(await call_bounded("loom_common.documents:extract_untrusted", data, options, bounds))
    except BoundedFailure as exc:
        raise UnreadableDocument(f"{name}: {exc.message}") from None
    return Extracted(text=report["text"], pages=int(report["pages"]))
