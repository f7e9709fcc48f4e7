"""Raw bytes of a document -> plain text, one parser per format, picked by file extension
(then by MIME type). Every failure is a `BadDocument` whose message a user can act on.

    .pdf             pypdf (text layer only: a scanned PDF without one is refused)
    .docx            python-docx (paragraphs and tables, in body order)
    .html .htm       selectolax (Lexbor HTML5 parser); scripts, styles and head dropped
    .md .markdown    markdown-it-py rendered to HTML, then as HTML
    .txt (text)      UTF-8 (BOM tolerated), else Windows-1252
    .csv             csv module, sniffed dialect; each row as "column: value; ..." lines

Untrusted files are parsed through `parse_untrusted`, in a limited child process (isolated.py
starts it): a DOCX whose members expand past `max_unzipped_bytes`, or any file whose text is
longer than `max_text_chars`, is refused, and any error a parser raises (lxml's included)
becomes a BadDocument naming the file type.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from pathlib import PurePath

from loom_rag.domain.errors import BadDocument

_BLOCKS = ("p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote",
           "section", "article", "header", "footer", "table", "ul", "ol", "dd", "dt", "hr")


def parse_pdf(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise BadDocument("the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except BadDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise BadDocument(f"not a readable PDF: {exc}") from exc
    text = "\n\n".join(p.strip() for p in pages)
    if not text.strip():
        raise BadDocument("the PDF has no text layer (scanned pages need OCR, which is not supported)")
    return text


def parse_docx(data: bytes) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Paragraph):
                lines.append(block.text)
            elif isinstance(block, Table):
                lines.extend(" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows)
                lines.append("")
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BadDocument(f"not a readable DOCX file: {exc}") from exc
    return "\n".join(lines)


def parse_html(data: bytes | str) -> str:
    from selectolax.lexbor import LexborHTMLParser

    html = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    tree = LexborHTMLParser(html)
    for node in tree.css("script, style, noscript, template, head, svg"):
        node.decompose()
    root = tree.body or tree.root
    if root is None:
        return ""
    for node in root.css(",".join(_BLOCKS)):
        node.insert_after("\n")  # block boundaries become line breaks
    return root.text(separator="")


def parse_markdown(data: bytes) -> str:
    from markdown_it import MarkdownIt

    return parse_html(MarkdownIt("commonmark").enable("table").render(decode_text(data)))


def decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise BadDocument("binary content where text was expected")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def parse_csv(data: bytes) -> str:
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [r for r in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise BadDocument(f"not a readable CSV file: {exc}") from exc
    if not rows:
        return ""
    header, body = rows[0], rows[1:]
    if not body:
        return "; ".join(header)
    return "\n".join("; ".join(f"{h.strip()}: {v.strip()}" for h, v in zip(header, row, strict=False))
                     for row in body)


PARSERS: dict[str, Callable[[bytes], str]] = {
    ".pdf": parse_pdf,
    ".docx": parse_docx,
    ".html": parse_html,
    ".htm": parse_html,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".txt": decode_text,
    ".text": decode_text,
    ".csv": parse_csv,
}

_BY_MIME = {
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "text/html": ".html",
    "text/markdown": ".md",
    "text/plain": ".txt",
    "text/csv": ".csv",
}


def file_kind(name: str, mime_type: str = "") -> str:
    """The parser key for a file (".pdf", ...); BadDocument if none fits."""
    ext = PurePath(name).suffix.lower()
    if ext in PARSERS:
        return ext
    by_mime = _BY_MIME.get(mime_type.split(";")[0].strip().lower())
    if by_mime:
        return by_mime
    raise BadDocument(f"unsupported file type {ext or mime_type or '(none)'!r}; "
                      f"supported: {', '.join(sorted(PARSERS))}")


def parse(data: bytes, name: str, mime_type: str = "") -> str:
    return PARSERS[file_kind(name, mime_type)](data)


def check_zip_expansion(data: bytes, max_unzipped_bytes: int) -> None:
    """Refuse an archive whose members declare more than the cap (zipfile never inflates a
    member past its declared size, so the declaration bounds the real expansion)."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise BadDocument(f"not a readable DOCX file: {exc}") from exc
    total = sum(m.file_size for m in members)
    if total > max_unzipped_bytes:
        raise BadDocument(f"the DOCX expands to {total // 2**20} MiB, over the {max_unzipped_bytes // 2**20} MiB "
                          "limit (a compression bomb?)")


def parse_untrusted(data: bytes, *, name: str, mime_type: str = "", max_text_chars: int,
                    max_unzipped_bytes: int) -> str:
    """The bounded child's entry point (see isolated.py): parse with the caps above."""
    kind = file_kind(name, mime_type)
    if kind == ".docx":
        check_zip_expansion(data, max_unzipped_bytes)
    try:
        text = PARSERS[kind](data)
    except (BadDocument, MemoryError):
        raise
    except Exception as exc:  # lxml, zlib, a parser's own bug: the file is what is wrong
        raise BadDocument(f"not a readable {kind[1:].upper()} file: {type(exc).__name__}: {exc}"[:500]) from exc
    if len(text) > max_text_chars:
        raise BadDocument(f"the document's text is {len(text)} characters, over the {max_text_chars} limit")
    return text
