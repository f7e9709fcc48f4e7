"""The shared document parsers (loom_common.documents): every format's text and page count,
OCR of an image and of a scanned PDF in the bounded child, clear errors for unreadable files;
and the file store's tenant-scoped keys (loom_common.blobs)."""

from __future__ import annotations

import io
import json

import pytest

from loom_common import blobs
from loom_common.documents import UnreadableDocument, extract_untrusted
from loom_common.documents_bounded import extract_isolated

CAPS = {"max_text_chars": 100_000, "max_unzipped_bytes": 10 * 2**20}


def _extract(data: bytes, name: str, mime: str = "") -> dict:
    return json.loads(extract_untrusted(data, name=name, mime_type=mime, **CAPS))


def _pdf(pages: list[str]) -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for text in pages:
        c.drawString(50, 800, text)
        c.showPage()
    c.save()
    return buf.getvalue()


def _docx(text: str) -> bytes:
    import docx

    d = docx.Document()
    d.add_paragraph(text)
    t = d.add_table(rows=1, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "HbA1c", "7.9 %"
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def lab_report_png(lines: list[str], size: tuple[int, int] = (1200, 500)) -> bytes:
    """A 'scanned' lab report: black text, drawn large, on white."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=56)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 130 * i), line, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("name", "data", "expected", "pages"), [
    ("report.pdf", _pdf(["Glucose 180 mg/dL", "Sodium 140 mmol/L"]), "Sodium 140", 2),
    ("report.docx", _docx("Patient: Ada"), "HbA1c | 7.9 %", 1),
    ("report.html", b"<html><head><script>x()</script></head><body><p>LDL <b>160</b></p></body></html>",
     "LDL 160", 1),
    ("report.md", b"# Lab\n\n*Creatinine* 1.1 mg/dL\n", "Creatinine 1.1", 1),
    ("report.txt", "Potassium 4.2 mmol/L — normal".encode(), "Potassium 4.2", 1),
    ("report.csv", b"test,value\nGlucose,180\nTSH,2.1\n", "test: TSH; value: 2.1", 1),
])
def test_every_text_format_gives_its_text_and_pages(name, data, expected, pages) -> None:
    got = _extract(data, name)
    assert expected in got["text"] and got["pages"] == pages
    assert "x()" not in got["text"]


@pytest.mark.parametrize(("name", "data", "message"), [
    ("broken.pdf", b"%PDF-1.4 not really", "PDF"),
    ("broken.docx", b"PK\x03\x04 not a zip", "DOCX"),
    ("binary.txt", b"\x00\x01\x02\x00", "binary"),
    ("program.exe", b"MZ", "unsupported file type"),
    ("photo.png", b"\x89PNG\r\n\x1a\n truncated", "not a readable image"),
])
def test_unreadable_files_raise_a_clear_error(name, data, message) -> None:
    with pytest.raises(UnreadableDocument, match=message):
        extract_untrusted(data, name=name, **CAPS)


def test_a_pixel_bomb_is_refused_before_decoding() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buf, "PNG")  # a few KB that would decode to 64 MP
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(UnreadableDocument, match="pixel limit"):
        extract_untrusted(buf.getvalue(), name="bomb.png", **CAPS)


@pytest.mark.slow
async def test_ocr_reads_a_scanned_report_and_a_scanned_pdf_in_the_bounded_child() -> None:
    png = lab_report_png(["CITY LAB", "Glucose 180 mg/dL"])
    got = await extract_isolated(png, "scan.png", "image/png")
    assert "Glucose 180" in got.text and got.pages == 1

    from PIL import Image

    pdf = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(pdf, "PDF")  # one page, a picture, no text layer
    got = await extract_isolated(pdf.getvalue(), "scan.pdf", "application/pdf")
    assert "Glucose 180" in got.text and got.pages == 1


async def test_the_bounded_reader_names_the_file_in_its_error() -> None:
    with pytest.raises(UnreadableDocument, match=r"^broken\.pdf: not a readable PDF"):
        await extract_isolated(b"%PDF-1.4 nope", "broken.pdf")


def test_file_keys_stay_inside_their_tenant() -> None:
    assert blobs.file_key("t1", "f-1", ".PNG") == "t1/f-1.png"
    for tenant, file_id, ext in [("t1", "../t2/f", "png"), ("t1", "a/b", "png"), ("..", "f", "png"),
                                 ("t1", "f", "png/../../x"), ("t1", "", "png")]:
        with pytest.raises(ValueError):
            blobs.file_key(tenant, file_id, ext)


async def test_local_store_round_trip_and_missing_key(tmp_path) -> None:
    store = blobs.open_store(blobs.StorageSettings(storage_dir=str(tmp_path)))
    await store.put("t1/f.txt", b"hi")
    assert await store.get("t1/f.txt") == b"hi"
    with pytest.raises(blobs.BlobMissing):
        await store.get("t2/f.txt")
