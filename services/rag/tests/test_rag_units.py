"""Unit tests of the rag domain pieces that need no server: parsing, cleaning, splitting,
fusion, rerank, storage keys and the local file store."""

from __future__ import annotations

import itertools

import pytest

from loom_rag.domain.chunking import ChunkingConfig
from loom_rag.domain.errors import BadDocument, InvalidArgument
from loom_rag.domain.models import Hit
from loom_rag.ingest.cleaning import clean
from loom_rag.ingest.parsers import file_kind, parse
from loom_rag.ingest.splitter import split_document
from loom_rag.ingest.tokenizer import WordPieceTokenizer
from loom_rag.retrieval.fusion import reciprocal_rank_fusion
from loom_rag.retrieval.rerank import LexicalOverlapReranker
from loom_rag.storage import LocalFileStore, document_key, validate_key


def test_every_format_parses_to_its_text(samples, expected_word) -> None:
    for name, data in samples.items():
        text = clean(parse(data, name))
        assert expected_word[name] in text, (name, text)
    html = clean(parse(samples["page.html"], "page.html"))
    assert "var x" not in html and "Tide pools\n" in html
    assert "city: Nuuk; country: Greenland" in parse(samples["table.csv"], "table.csv")
    assert "flour | 500" in parse(samples["notes.docx"], "notes.docx")


@pytest.mark.parametrize("name, data, message", [
    ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "PDF"),
    ("broken.docx", b"PK\x03\x04 not a zip", "DOCX"),
    ("binary.txt", b"\x00\x01\x02\x00", "binary"),
    ("program.exe", b"MZ", "unsupported file type"),
])
def test_bad_files_raise_a_clear_bad_document(name, data, message) -> None:
    with pytest.raises(BadDocument, match=message):
        parse(data, name)


def test_a_pdf_without_text_is_refused(builders) -> None:
    import io

    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.rect(10, 10, 100, 100)
    c.save()
    with pytest.raises(BadDocument, match="no text layer"):
        parse(buf.getvalue(), "scan.pdf")
    assert parse(builders.pdf("x"), "x.pdf").strip() == "x"


def test_file_kind_falls_back_to_mime_type() -> None:
    assert file_kind("upload", "application/pdf; charset=binary") == ".pdf"
    assert file_kind("NOTES.MD") == ".md"


def test_cleaning_rules() -> None:
    assert clean("a \t b\r\n\n\n\nc\x07 ") == "a b\n\nc"
    assert clean("mail me@x.org or https://x.org/a now", remove_urls_emails=True) == "mail or now"


def test_splitter_respects_token_budget_and_overlap() -> None:
    tok = WordPieceTokenizer()
    text = "\n\n".join(" ".join(f"Paragraph {p} sentence {s} about rivers." for s in range(30)) for p in range(6))
    rule = ChunkingConfig(mode="custom", max_tokens=64, chunk_overlap=16)
    chunks = split_document(text, rule, tok)
    assert len(chunks) > 10
    assert all(c.tokens <= 64 + 2 for c in chunks)  # piece counts are additive to within a token or two
    overlapping = sum(1 for a, b in itertools.pairwise(chunks) if b.content.split(".")[0] in a.content)
    assert overlapping >= len(chunks) // 2
    # one huge word-free run still gets cut, on token boundaries
    assert all(c.tokens <= 64 + 2 for c in split_document("x" * 5000, rule, tok))


def test_parent_child_chunks_carry_their_parent() -> None:
    tok = WordPieceTokenizer()
    text = "\n\n".join(f"Section {i}. " + "Words about birds and trees. " * 20 for i in range(4))
    rule = ChunkingConfig(mode="hierarchical", max_tokens=200, chunk_overlap=0, subchunk_max_tokens=32)
    chunks = split_document(text, rule, tok)
    assert all(c.parent_content and c.content in c.parent_content for c in chunks)
    assert len({c.parent_content for c in chunks}) >= 4


def test_chunking_config_refuses_overlap_not_smaller_than_size() -> None:
    with pytest.raises(ValueError, match="chunk_overlap"):
        ChunkingConfig(max_tokens=50, chunk_overlap=50)


def _hit(sid: str, score: float = 0.5, content: str = "") -> Hit:
    return Hit(segment_id=sid, document_id="d", dataset_id="s", content=content or sid, position=1,
               document_name="n", metadata={}, parent_content=None, score=score)


def test_weighted_rrf_fuses_ranks_and_normalises() -> None:
    fused = reciprocal_rank_fusion([[_hit("a"), _hit("b")], [_hit("b"), _hit("c")]], [1.0, 1.0])
    assert [h.segment_id for h in fused] == ["b", "a", "c"]
    top = reciprocal_rank_fusion([[_hit("a")], [_hit("a")]], [0.3, 0.7])
    assert top[0].score == pytest.approx(1.0)
    keyword_heavy = reciprocal_rank_fusion([[_hit("a"), _hit("b")], [_hit("b"), _hit("a")]], [0.1, 0.9])
    assert keyword_heavy[0].segment_id == "b"


async def test_lexical_reranker_lifts_exact_terms() -> None:
    hits = [_hit("x", 0.9, "rivers and lakes"), _hit("y", 0.5, "order ZX-4471-Q today")]
    out = await LexicalOverlapReranker().rerank("ZX-4471-Q", hits, 2)
    assert out[0].segment_id == "y"


async def test_local_file_store_round_trip(tmp_path) -> None:
    store = LocalFileStore(tmp_path)
    key = document_key("tenant/../x", "ds", "doc", 1, "../../etc/passwd")
    assert ".." not in key.split("/")
    await store.put(key, b"hello")
    assert await store.get(key) == b"hello"
    await store.delete_prefix(key.rsplit("/", 1)[0])
    with pytest.raises(Exception, match="no stored file"):
        await store.get(key)
    with pytest.raises(InvalidArgument):
        validate_key("../outside")
