"""Hostile uploads (issue 18, point 5), through the real ingest pipeline and Postgres: a small
PDF of many operators, a DOCX whose text balloons, a DOCX zip bomb and a malformed DOCX. Each
ends in the document's `error` state with a clear message on its first delivery (a
PermanentError: the consumer terminates it, no redelivery), and parsing never holds rag's
event loop. The files are built here, byte by byte."""

from __future__ import annotations

import io
import uuid
import zipfile
import zlib

import pytest

from loom_common.errors import PermanentError
from loom_common.events import DocumentIngestRequested, DocumentStatus
from loom_common.testing import loop_ticks, migrated_pool
from loom_rag.ingest.isolated import ParseLimits
from loom_rag.ingest.pipeline import Ingestor
from loom_rag.ingest.tokenizer import WordPieceTokenizer
from loom_rag.management import Management, Source
from loom_rag.storage import LocalFileStore
from loom_rag.store.tenancy import TenantDb

pytestmark = pytest.mark.integration

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def many_operators_pdf(n: int) -> bytes:
    """One page whose compressed content stream repeats a text operator n times."""
    ops = b"BT /F1 12 Tf " + b"1 0 0 1 0 0 Tm (a) Tj " * n + b"ET"
    stream = zlib.compress(ops, 9)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
            b"/Contents 5 0 R >>", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def docx(document_xml: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    """A minimal DOCX package around the given word/document.xml."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.'
                   'openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/'
                   'xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
                   'officedocument.wordprocessingml.document.main+xml"/></Types>')
        z.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
                   'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>')
        z.writestr("word/document.xml", document_xml)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def ballooning_docx(chars: int) -> bytes:
    para = f"<w:p><w:r><w:t>{'a' * 1000}</w:t></w:r></w:p>"
    body = para * (chars // 1000)
    return docx(f'<?xml version="1.0"?><w:document {W}><w:body>{body}</w:body></w:document>'.encode())


@pytest.fixture
async def rag(database_url, tmp_path, builders):
    async with migrated_pool(database_url, "rag", "loom_rag.migrations") as pool:
        db = await TenantDb.open(pool)
        tok, files, emb = WordPieceTokenizer(), LocalFileStore(tmp_path / "files"), builders.embedder()
        queue: list[DocumentIngestRequested] = []

        class Queue:
            async def enqueue(self, **kw) -> None:
                queue.append(DocumentIngestRequested(**kw))

        class Progress:
            async def report(self, p) -> None:
                pass

        m = Management(db=db, files=files, queue=Queue(), embedder=emb, catalog=emb, tokenizer=tok,
                       default_embedding_model="all-minilm:l6-v2")

        def ingestor(limits: ParseLimits) -> Ingestor:
            return Ingestor(db=db, files=files, embedder=emb, tokenizer=tok, progress=Progress(), batch_size=64,
                            parse_limits=limits)

        yield m, queue, ingestor


async def _ingest_one(rag, name: str, data: bytes, limits: ParseLimits):
    m, queue, make = rag
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    ds = await m.create_dataset(tenant, name="hostile")
    doc = await m.create_document(tenant, ds.id, name=name, source=Source(file=data))
    item = queue.pop()
    with pytest.raises(PermanentError) as err:  # terminated on the first delivery
        await make(limits).ingest(item)
    got = await m.get_document(tenant, ds.id, doc.id)
    assert got.status == DocumentStatus.ERROR
    return got.error, err.value


async def test_rag_many_operator_pdf_parses_off_the_event_loop_under_a_cpu_limit(rag) -> None:
    """A few KB of PDF that costs seconds of CPU: the loop keeps ticking, the CPU limit ends it."""
    pdf = many_operators_pdf(150_000)
    assert len(pdf) < 16 * 1024
    async with loop_ticks() as ticks:
        error, _ = await _ingest_one(rag, "operators.pdf", pdf, ParseLimits(cpu_s=1))
    assert "more than 1 s of CPU" in error and "operators.pdf" in error
    assert ticks.count > 3  # on the event loop, the parse would have allowed none


async def test_rag_ballooning_docx_never_reaches_indexing(rag) -> None:
    """52 KiB of DOCX once became 16.8 MB of text in the index."""
    data = ballooning_docx(17_000_000)
    assert len(data) < 200 * 1024
    error, _ = await _ingest_one(rag, "balloon.docx", data, ParseLimits())
    assert "over the 5000000 limit" in error


async def test_rag_docx_zip_bomb_is_refused_by_its_declared_size(rag) -> None:
    xml = f'<?xml version="1.0"?><w:document {W}><w:body><w:p><w:r><w:t>hi</w:t></w:r></w:p></w:body></w:document>'
    data = docx(xml.encode(), {"word/media/bomb.bin": b"\0" * (24 * 2**20)})
    assert len(data) < 100 * 1024
    error, _ = await _ingest_one(rag, "bomb.docx", data, ParseLimits(max_unzipped_bytes=8 * 2**20))
    assert "compression bomb" in error


async def test_rag_malformed_docx_fails_at_once_with_a_clear_message(rag) -> None:
    """lxml's XMLSyntaxError once escaped the parser and the item was redelivered five times."""
    data = docx(f'<?xml version="1.0"?><w:document {W}><w:body><w:p>unclosed'.encode())
    error, exc = await _ingest_one(rag, "broken.docx", data, ParseLimits())
    assert "not a readable DOCX file" in error and "XMLSyntaxError" in error
    assert exc.message == error
