"""A real-text corpus for the RAG benchmark, available offline, embedded once and cached.

Text: the docstrings (read with `ast`, never imported) and the documentation files (.md, .rst,
.txt) of the Python packages installed in .venv, split on blank lines into chunks of 80-600
characters, de-duplicated, in a fixed shuffled order. Vectors: the bundled MiniLM through the
inference service's ONNX backend (int8), normalised, embedded in shards of 4,096 chunks under
.loom/bench-rag/corpus/ so an interrupted run resumes where it stopped.

    nice -n 19 .venv/bin/python bench/rag_corpus.py --chunks 120000     # embeds what is missing

Quality pairs: a docstring's summary line and the rest of the same docstring (a question and
the passage that answers it, roughly); retrieval quality of a backend is how often the passage
is among the 10 nearest of the pairs' passages.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import hashlib
import json
import random
import re
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / ".loom" / "bench-rag" / "corpus"
DERIVED = ROOT / ".loom" / "derived-models"
SHARD = 4096
FULL = 120_000
MIN_CHARS, MAX_CHARS = 80, 600
SEED = 11


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="ignore"))
    except (SyntaxError, ValueError, RecursionError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                out.append(doc)
    return out


def _chunks(text: str) -> list[str]:
    """Paragraphs merged up to MAX_CHARS; long paragraphs cut on sentence ends."""
    out, current = [], ""
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        while len(para) > MAX_CHARS:
            cut = para.rfind(". ", 0, MAX_CHARS)
            cut = cut + 1 if cut > MIN_CHARS else MAX_CHARS
            out.append(para[:cut].strip())
            para = para[cut:].strip()
        if current and len(current) + len(para) + 1 > MAX_CHARS:
            out.append(current)
            current = ""
        current = f"{current} {para}".strip()
    if current:
        out.append(current)
    return [c for c in out if len(c) >= MIN_CHARS]


def texts(limit: int) -> list[str]:
    """The first `limit` of FULL distinct chunks, the same list every time (cached as JSON).

    Packages are read in name order until 1.5 x FULL chunks are collected, then shuffled: a
    smaller `limit` is a prefix of the larger list, so its vectors are a prefix of the shards."""
    cache = CORPUS / f"chunks-{FULL}.json"
    if cache.exists():
        return json.loads(cache.read_text())[:limit]
    site = _site_packages()
    seen: set[str] = set()
    chunks: list[str] = []
    for path in sorted(site.rglob("*")):
        if len(chunks) >= FULL * 3 // 2:
            break
        if not path.is_file() or path.stat().st_size > 300_000 or "/tests/" in str(path):
            continue
        if path.suffix == ".py":
            docs = _docstrings(path)
        elif path.suffix in (".md", ".rst", ".txt") and "LICENSE" not in path.name.upper():
            docs = [path.read_text(encoding="utf-8", errors="ignore")]
        else:
            continue
        for doc in docs:
            for chunk in _chunks(doc):
                if chunk not in seen:
                    seen.add(chunk)
                    chunks.append(chunk)
    random.Random(SEED).shuffle(chunks)
    chunks = chunks[:FULL]
    CORPUS.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(chunks))
    return chunks[:limit]


def quality_pairs(limit: int) -> list[tuple[str, str]]:
    """(summary line, rest of the docstring) for docstrings with both, the same list every time."""
    cache = CORPUS / "pairs.json"
    if cache.exists():
        return [tuple(p) for p in json.loads(cache.read_text())][:limit]  # type: ignore[misc]
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for path in sorted(_site_packages().rglob("*.py")):
        for doc in _docstrings(path):
            head, _, body = doc.partition("\n\n")
            head, body = " ".join(head.split()), " ".join(body.split())[:MAX_CHARS]
            if 20 <= len(head) <= 200 and len(body) >= 150 and body not in seen and head not in seen:
                seen.update((head, body))
                pairs.append((head, body))
    random.Random(SEED + 1).shuffle(pairs)
    pairs = pairs[:5_000]
    CORPUS.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(pairs))
    return pairs[:limit]


def _embedder(backend: str):
    """An embedder of the inference service for `backend` (torch | onnx | static), in process."""
    from loom_inference.router.factory import BUNDLED_EMBED, BUNDLED_STATIC_EMBED, build_backend, default_routes
    from loom_inference.settings import InferenceSettings

    settings = InferenceSettings(embed_backend="onnx" if backend == "static" else backend,
                                 derived_models_dir=DERIVED, models_dir=CORPUS / "no-models")
    routes = {r.name: r for r in default_routes(settings)}
    return build_backend(routes[BUNDLED_STATIC_EMBED if backend == "static" else BUNDLED_EMBED], settings)


async def embed_all(items: list[str], backend: str, batch: int = 256) -> np.ndarray:
    model = _embedder(backend)
    try:
        out = []
        for i in range(0, len(items), batch):
            out.append(np.asarray((await model.embed(items[i:i + batch])).vectors, dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, 384), np.float32)
    finally:
        await model.close()


def vectors(chunks: list[str], *, progress: bool = False) -> np.ndarray:
    """The ONNX MiniLM vectors of `chunks`, from the shard cache; missing shards are embedded."""
    key = hashlib.sha256("\n".join(chunks[:SHARD]).encode()).hexdigest()[:12]  # same text order, same shards
    folder = CORPUS / f"vectors-onnx-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for n, start in enumerate(range(0, len(chunks), SHARD)):
        part = chunks[start:start + SHARD]
        shard = folder / f"shard-{n:05d}-{len(part)}.npy"
        if not shard.exists():
            t0 = time.perf_counter()
            got = asyncio.run(embed_all(part, "onnx"))
            np.save(shard.with_suffix(".tmp.npy"), got)
            shard.with_suffix(".tmp.npy").replace(shard)
            if progress:
                print(f"shard {n}: {len(part)} chunks in {time.perf_counter() - t0:.0f} s "
                      f"({len(part) / (time.perf_counter() - t0):.0f}/s)", flush=True)
        parts.append(np.load(shard))
    return np.concatenate(parts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=FULL)
    args = parser.parse_args()
    t0 = time.perf_counter()
    items = texts(args.chunks)
    print(f"{len(items)} chunks, mean {np.mean([len(c) for c in items]):.0f} chars, "
          f"collected in {time.perf_counter() - t0:.0f} s", flush=True)
    v = vectors(items, progress=True)
    print(v.shape, file=sys.stderr)
