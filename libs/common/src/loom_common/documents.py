"""Raw bytes of a document -> plain text, one parser per format, picked by file extension
(then by MIME type). Every failure is an `UnreadableDocument` whose message a user can act on.
Shared by rag's ingestion and the orchestrator's document-extractor node; the parser libraries
are imported lazily and declared by the package that parses (rag, orchestrator).

    .pdf             pypdf; with `ocr`, pages without a text layer are read by OCR of their images
    .docx            python-docx (paragraphs and tables, in body order)
    .html .htm       selectolax (Lexbor HTML5 parser); scripts, styles and head dropped
    .md .markdown    markdown-it-py rendered to HTML, then as HTML
    .txt (text)      UTF-8 (BOM tolerated), else Windows-1252
    .csv             csv module, sniffed dialect; each row as "column: value; ..." lines
    .png .jpg ...    with `ocr` only: rapidocr (PP-OCR ONNX models shipped in its wheel)

Untrusted files are parsed only in a limited child process (`loom_common.bounded`), through
`parse_untrusted` (text; rag) or `extract_untrusted` (text and page count, OCR allowed; the
document-extractor): a DOCX whose members expand past `max_unzipped_bytes`, an image over
`MAX_IMAGE_PIXELS`, or any file whose text is longer than `max_text_chars`, is refused, and
any error a parser raises (lxml's included) becomes an UnreadableDocument naming the file type.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath

from loom_common.errors import PermanentError


class UnreadableDocument(PermanentError):
    """A file that cannot be parsed (broken, encrypted, unsupported, too large once unpacked)."""

    code = "bad_document"


_BLOCKS = ("p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote",
           "section", "article", "header", "footer", "table", "ul", "ol", "dd", "dt", "hr")


@dataclass
class Parsed:
    text: str
    pages: int = 1  # a PDF's page count; 1 for an image or a flowing document (DOCX, HTML, text)


# An image is decoded whole before OCR: refuse a pixel bomb (a tiny PNG that inflates to
# gigabytes) before decoding it. 40 MP is an A4 page scanned at 600 dpi with room to spare.
MAX_IMAGE_PIXELS = 40_000_000
MAX_OCR_PAGES = 30  # scanned pages read per PDF (OCR costs ~1 s of CPU a page)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def read_pdf(data: bytes, *, ocr: bool = False) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableDocument("the PDF is encrypted")
        texts, scanned = [], 0
        for page in reader.pages:
            text = (page.extract_text() or "").strip()
            if not text and ocr and scanned < MAX_OCR_PAGES:
                scanned += 1  # no text layer: read the page's pictures
                text = "\n".join(ocr_image(image.data) for image in page.images).strip()
            texts.append(text)
    except UnreadableDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableDocument(f"not a readable PDF: {exc}") from exc
    text = "\n\n".join(texts)
    if not text.strip():
        why = "no text was found by OCR either" if ocr else "scanned pages need OCR, which is not enabled here"
        raise UnreadableDocument(f"the PDF has no text layer ({why})")
    return Parsed(text, pages=len(texts))


def parse_pdf(data: bytes) -> str:
    return read_pdf(data).text


def ocr_image(data: bytes) -> str:
    """Text of a picture (a photo or scan of a page), line by line in reading order."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableDocument(f"not a readable image: {exc}") from exc
    if width * height > MAX_IMAGE_PIXELS:
        raise UnreadableDocument(f"the image is {width}x{height} pixels, over the {MAX_IMAGE_PIXELS} pixel limit")
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the bounded worker's answer
        result = _ocr_engine()(data)
    return "\n".join(result.txts or ())


_ENGINE = None


def _ocr_engine():
    global _ENGINE  # one engine per (short-lived) child: loading the models is most of the cost
    if _ENGINE is None:
        import logging

        from rapidocr import RapidOCR

        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        _ENGINE = RapidOCR()
    return _ENGINE


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
        raise UnreadableDocument(f"not a readable DOCX file: {exc}") from exc
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
        raise UnreadableDocument("binary content where text was expected")
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
        raise UnreadableDocument(f"not a readable CSV file: {exc}") from exc
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
    """The parser key for a file (".pdf", ...); UnreadableDocument if none fits."""
    ext = PurePath(name).suffix.lower()
    if ext in PARSERS:
        return ext
    by_mime = _BY_MIME.get(mime_type.split(";")[0].strip().lower())
    if by_mime:
        return by_mime
    raise UnreadableDocument(f"unsupported file type {ext or mime_type or '(none)'!r}; "
                             f"supported: {', '.join(sorted(PARSERS))}")


def parse(data: bytes, name: str, mime_type: str = "") -> str:
    return PARSERS[file_kind(name, mime_type)](data)


def check_zip_expansion(data: bytes, max_unzipped_bytes: int) -> None:
    """Refuse an archive whose members declare more than the cap (zipfile never inflates a
    member past its declared size, so the declaration bounds the real expansion)."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise UnreadableDocument(f"not a readable DOCX file: {exc}") from exc
    total = sum(m.file_size for m in members)
    if total > max_unzipped_bytes:
        raise UnreadableDocument(f"the DOCX expands to {total // 2**20} MiB, over the "
                                 f"{max_unzipped_bytes // 2**20} MiB limit (a compression bomb?)")


def _checked(kind: str, data: bytes, max_unzipped_bytes: int, read: Callable[[], Parsed]) -> Parsed:
    if kind == ".docx":
        check_zip_expansion(data, max_unzipped_bytes)
    try:
        return read()
    except (UnreadableDocument, MemoryError):
        raise
    except Exception as exc:  # lxml, zlib, a parser's own bug: the file is what is wrong
        raise UnreadableDocument(f"not a readable {kind[1:].upper()} file: {type(exc).__name__}: {exc}"[:500]) from exc


def _capped(text: str, max_text_chars: int) -> str:
    if len(text) > max_text_chars:
        raise UnreadableDocument(f"the document's text is {len(text)} characters, over the {max_text_chars} limit")
    return text


def parse_untrusted(data: bytes, *, name: str, mime_type: str = "", max_text_chars: int,
                    max_unzipped_bytes: int) -> str:
    """A bounded child's entry point (rag's isolated.py): the text, no OCR."""
    kind = file_kind(name, mime_type)
    parsed = _checked(kind, data, max_unzipped_bytes, lambda: Parsed(PARSERS[kind](data)))
    return _capped(parsed.text, max_text_chars)


def extract_untrusted(data: bytes, *, name: str, mime_type: str = "", max_text_chars: int,
                      max_unzipped_bytes: int) -> str:
    """A bounded child's entry point (`documents_bounded.extract_isolated`): JSON of the text and
    page count, images and scanned PDF pages read by OCR."""
    if _image_kind(name, mime_type):
        parsed = _checked(".image", data, 0, lambda: Parsed(ocr_image(data)))
        if not parsed.text.strip():
            raise UnreadableDocument("no text was found in the image")
    else:
        kind = file_kind(name, mime_type)
        read = (lambda: read_pdf(data, ocr=True)) if kind == ".pdf" else (lambda: Parsed(PARSERS[kind](data)))
        parsed = _checked(kind, data, max_unzipped_bytes, read)
    return json.dumps({"text": _capped(parsed.text, max_text_chars), "pages": parsed.pages})


def _image_kind(name: str, mime_type: str) -> bool:
    return PurePath(name).suffix.lower() in IMAGE_EXTENSIONS or mime_type.lower().startswith("image/")
