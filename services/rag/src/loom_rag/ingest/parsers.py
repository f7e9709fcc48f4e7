"""Rag's document parsers: the shared ones of `loom_common.documents` (one set of parsers for
rag's ingestion and the orchestrator's document-extractor). Rag ingests without OCR:
`parse_untrusted` (the bounded child's entry point, see isolated.py) refuses a PDF with no
text layer and images."""

from loom_common.documents import (
    PARSERS,
    check_zip_expansion,
    decode_text,
    file_kind,
    parse,
    parse_csv,
    parse_docx,
    parse_html,
    parse_markdown,
    parse_pdf,
    parse_untrusted,
)

__all__ = ["PARSERS", "check_zip_expansion", "decode_text", "file_kind", "parse", "parse_csv", "parse_docx",
           "parse_html", "parse_markdown", "parse_pdf", "parse_untrusted"]
