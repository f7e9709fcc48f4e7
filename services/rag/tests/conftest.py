"""Fixtures of the rag tests: small documents of every supported type, built here (no binary
files in the repo), and a deterministic test-only embedder for tests that do not claim real
embeddings."""

from __future__ import annotations

import hashlib
import io
import re

import numpy as np
import pytest

from loom_rag.domain.ports import Embeddings

DIM = 384


def make_pdf(text: str) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    y = 800
    for line in text.splitlines():
        c.drawString(50, y, line)
        y -= 16
        if y < 60:
            c.showPage()
            y = 800
    c.save()
    return buf.getvalue()


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    d = docx.Document()
    for p in paragraphs:
        d.add_paragraph(p)
    if table:
        t = d.add_table(rows=len(table), cols=len(table[0]))
        for i, row in enumerate(table):
            for j, cell in enumerate(row):
                t.cell(i, j).text = cell
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


SAMPLES = {
    "guide.pdf": lambda: make_pdf("Volcanoes of Iceland\nHekla erupted in 2000 and Katla sleeps under a glacier.\n"
                                  "Lava fields cover much of the island."),
    "notes.docx": lambda: make_docx(["Sourdough baking notes", "Feed the starter with rye flour every morning."],
                                    [["ingredient", "grams"], ["flour", "500"]]),
    "page.html": lambda: (b"<html><head><title>t</title><script>var x=1;</script></head><body><h1>Tide pools</h1>"
                          b"<p>Anemones and <b>hermit crabs</b> live in tide pools.</p></body></html>"),
    "readme.md": lambda: (b"# Bicycle repair\n\nTo fix a puncture, remove the *inner tube* and patch it.\n\n"
                          b"- tyre levers\n"),
    "plain.txt": lambda: b"Chess openings: the Sicilian defence answers 1.e4 with c5.\n",
    "table.csv": lambda: b"city,country,population\nReykjavik,Iceland,139000\nNuuk,Greenland,19000\n",
}

EXPECTED_WORD = {"guide.pdf": "Katla", "notes.docx": "rye", "page.html": "hermit", "readme.md": "puncture",
                 "plain.txt": "Sicilian", "table.csv": "Nuuk"}


class HashingEmbedder:
    """Test-only: bag of hashed words -> normalised 384-d vector; similar words, similar vectors.

    Not a model: it stands in only where a test is about ingestion mechanics, never semantics.
    """

    def __init__(self, dim: int = DIM, fail_after_calls: int | None = None):
        self.dim, self.calls, self.fail_after_calls = dim, 0, fail_after_calls

    async def embed(self, model: str, texts: list[str], *, tenant_id: str) -> Embeddings:
        self.calls += 1
        if self.fail_after_calls is not None and self.calls > self.fail_after_calls:
            raise RuntimeError("simulated crash while embedding")
        vectors = []
        for text in texts:
            v = np.zeros(self.dim, dtype=np.float32)
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big")
                v[h % self.dim] += 1.0
            n = np.linalg.norm(v)
            vectors.append((v / n if n else v + 1 / np.sqrt(self.dim)).tolist())
        return Embeddings(model=model, dimension=self.dim, vectors=vectors)

    async def embedding_dimension(self, model: str) -> int:
        return self.dim


@pytest.fixture
def samples() -> dict[str, bytes]:
    return {name: build() for name, build in SAMPLES.items()}


@pytest.fixture
def expected_word() -> dict[str, str]:
    return dict(EXPECTED_WORD)


@pytest.fixture
def builders():
    """Document builders, for tests that make their own files."""

    class B:
        pdf = staticmethod(make_pdf)
        docx = staticmethod(make_docx)
        embedder = HashingEmbedder

    return B
