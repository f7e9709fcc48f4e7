"""The bundled MiniLM's backends: which one a setting picks, the ONNX exports (int8, float32; by CPU) against the
torch model (cosine, never bit-exact), the static model2vec table, and the dynamic batcher
(length buckets, order kept across buckets and requests, errors reaching every caller)."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from loom_inference.backends.minilm_derived import onnx_precision
from loom_inference.engine.embed_batching import DynamicBatcher, plan_batches
from loom_inference.router.factory import BUNDLED_EMBED, BUNDLED_STATIC_EMBED, build_backend, default_routes
from loom_inference.settings import InferenceSettings

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Return a new dictionary initialised from an optional positional argument and keyword arguments.",
    "hi",
    "Asynchronous I/O: an event loop runs tasks and callbacks, performs network IO and runs subprocesses.",
    "Postgres stores the vectors; an HNSW index finds the nearest ones without scanning the table.",
    "Raise ValueError when the file is empty.",
    "Le chat dort sur le canapé.",
    "def parse(path: str) -> dict: read a TOML file and return its tables as a dictionary " * 6,
]


def _routes(tmp_path, **kw) -> tuple[InferenceSettings, dict]:
    settings = InferenceSettings(models_dir=tmp_path / "models", **kw)
    return settings, {r.name: r for r in default_routes(settings)}


# ---- selection -------------------------------------------------------------------------------------

def test_backend_setting_selects_the_minilm_runtime(tmp_path):
    from loom_inference.backends.derived_embedding import OnnxEmbedder, StaticEmbedder
    from loom_inference.backends.sentence_transformers import SentenceTransformerEmbedder

    settings, routes = _routes(tmp_path)
    assert settings.embed_backend == "onnx"  # the measured default (docs/rag.md)
    assert isinstance(build_backend(routes[BUNDLED_EMBED], settings), OnnxEmbedder)
    settings, routes = _routes(tmp_path, embed_backend="torch")
    assert isinstance(build_backend(routes[BUNDLED_EMBED], settings), SentenceTransformerEmbedder)
    # The static table is its own model (another vector space), whatever the runtime setting.
    static = build_backend(routes[BUNDLED_STATIC_EMBED], settings)
    assert isinstance(static, StaticEmbedder) and static.info.kind == "embedding"
    assert routes[BUNDLED_STATIC_EMBED].embedding_dimension == 256


def test_static_is_refused_as_a_runtime_with_the_model_to_use(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOM_INFERENCE_EMBED_BACKEND", "static")
    with pytest.raises(ValidationError, match="all-minilm:l6-v2-static"):
        InferenceSettings(models_dir=tmp_path)
    monkeypatch.setenv("LOOM_INFERENCE_EMBED_BACKEND", "tensorflow")
    with pytest.raises(ValidationError, match="embed_backend"):
        InferenceSettings(models_dir=tmp_path)


# ---- batching --------------------------------------------------------------------------------------

def test_plan_batches_groups_similar_lengths_within_limits():
    lengths = [5, 200, 7, 6, 180, 50, 5, 210, 8, 52]
    batches = plan_batches(lengths, max_batch=3, max_batch_tokens=400)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # each text once
    for b in batches:
        assert 1 <= len(b) <= 3
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 400
    # Sorted by length: no batch pads a short text to a long one's length.
    spans = [(min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches]
    assert spans == sorted(spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # contiguous runs of the sorted lengths
    assert plan_batches([900], max_batch=4, max_batch_tokens=100) == [[0]]  # a long text still runs


async def test_batcher_merges_requests_and_keeps_each_callers_order():
    from concurrent.futures import ThreadPoolExecutor

    calls: list[list[int]] = []
    gate = asyncio.Event()

    def run(batch: list[list[int]]) -> np.ndarray:
        calls.append([len(ids) for ids in batch])
        return np.array([[ids[0], len(ids)] for ids in batch], dtype=np.float32)  # row says which text

    pool = ThreadPoolExecutor(max_workers=1)
    batcher = DynamicBatcher(run, pool, max_batch=4, max_batch_tokens=64)
    # Request i, text j: first token 100*i + j, length varying so texts land in different buckets.
    requests = [[[100 * i + j] * (1 + (7 * i + 5 * j) % 15) for j in range(6)] for i in range(5)]

    async def one(ids):
        await gate.wait()
        return await batcher.embed(ids)

    tasks = [asyncio.create_task(one(ids)) for ids in requests]
    await asyncio.sleep(0)
    gate.set()  # all five arrive together: they are served as one pool of texts
    results = await asyncio.gather(*tasks)
    for ids, rows in zip(requests, results, strict=True):
        assert rows[:, 0].tolist() == [t[0] for t in ids]  # every caller gets its own texts, in order
        assert rows[:, 1].tolist() == [len(t) for t in ids]
    assert all((len(c) <= 4 and len(c) * max(c) <= 64) or len(c) == 1 for c in calls)
    assert batcher.batches_run == len(calls) < sum(len(r) for r in requests)
    await batcher.close()
    pool.shutdown()


async def test_batcher_error_reaches_every_waiting_caller_and_recovers():
    from concurrent.futures import ThreadPoolExecutor

    fail = True

    def run(batch):
        if fail:
            raise RuntimeError("model exploded")
        return np.ones((len(batch), 3), dtype=np.float32)

    pool = ThreadPoolExecutor(max_workers=1)
    batcher = DynamicBatcher(run, pool)
    got = await asyncio.gather(batcher.embed([[1, 2]]), batcher.embed([[3]]), return_exceptions=True)
    assert all(isinstance(g, RuntimeError) for g in got)
    fail = False
    assert (await batcher.embed([[1], [2, 3]])).shape == (2, 3)
    await batcher.close()
    pool.shutdown()


# ---- the real derived models (built once into the shared cache; the first build is slow) ----------

@pytest.fixture(scope="module")
def derived_dir() -> str:
    return str(InferenceSettings().derived_models)


def test_onnx_precision_follows_the_cpus_int8_dot_product():
    zen2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    zen4 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni\n"
    alder_lake = "flags\t\t: fpu avx2 avx_vnni\n"
    assert [onnx_precision("auto", c) for c in (zen2, zen4, alder_lake)] == ["fp32", "int8", "int8"]
    assert onnx_precision("int8", zen2) == "int8" and onnx_precision("fp32", zen4) == "fp32"
    with pytest.raises(ValidationError):
        InferenceSettings(embed_onnx_precision="int4")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "fp32"])
async def test_onnx_agrees_with_the_torch_model(tmp_path, derived_dir, precision):
    _, routes = _routes(tmp_path)
    settings_onnx, _ = _routes(tmp_path, derived_models_dir=derived_dir, embed_onnx_precision=precision)
    settings_torch, routes_torch = _routes(tmp_path, embed_backend="torch")
    onnx = build_backend(routes[BUNDLED_EMBED], settings_onnx)
    torch_model = build_backend(routes_torch[BUNDLED_EMBED], settings_torch)
    try:
        a = np.asarray((await onnx.embed(SENTENCES)).vectors)
        b = np.asarray((await torch_model.embed(SENTENCES)).vectors)
    finally:
        await onnx.close()
        await torch_model.close()
    assert a.shape == b.shape == (len(SENTENCES), 384)
    cos = (a * b).sum(axis=1)  # both normalised
    assert cos.mean() >= 0.99, cos
    assert cos.min() >= 0.97, cos
    # Quality, not just closeness: the same neighbours. Each sentence's nearest other is the same.
    na, nb = a @ a.T - 2 * np.eye(len(a)), b @ b.T - 2 * np.eye(len(b))
    assert (na.argmax(1) == nb.argmax(1)).mean() >= 0.75


@pytest.mark.slow
def test_onnx_and_static_serve_without_importing_torch(derived_dir):
    code = f"""
import asyncio, sys
import numpy as np
from loom_inference.router.factory import BUNDLED_EMBED, BUNDLED_STATIC_EMBED, build_backend, default_routes
from loom_inference.settings import InferenceSettings
s = InferenceSettings(derived_models_dir={derived_dir!r})
routes = {{r.name: r for r in default_routes(s)}}
async def main():
    onnx, static = build_backend(routes[BUNDLED_EMBED], s), build_backend(routes[BUNDLED_STATIC_EMBED], s)
    texts = ["a short one", "a much longer text about databases " * 20, "third"]
    a, b = await onnx.embed(texts), await static.embed(texts)
    assert (a.dimension, len(a.vectors)) == (384, 3) and (b.dimension, len(b.vectors)) == (256, 3)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-3 for v in a.vectors + b.vectors)
    # The batch shape does not change a text's vector beyond float noise.
    alone = (await onnx.embed(texts[:1])).vectors[0]
    assert float(np.dot(alone, a.vectors[0])) > 0.999
    await onnx.close(); await static.close()
asyncio.run(main())
assert "torch" not in sys.modules, "serving imported torch"
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


@pytest.mark.slow
async def test_static_model_ranks_related_text_first(tmp_path, derived_dir):
    settings, routes = _routes(tmp_path, derived_models_dir=derived_dir)
    static = build_backend(routes[BUNDLED_STATIC_EMBED], settings)
    try:
        docs = ["Postgres index for nearest neighbour search over vectors",
                "A recipe for bread: flour, water, salt and yeast",
                "The football match ended in a draw"]
        q = np.asarray((await static.embed(["vector similarity search in a database"])).vectors[0])
        d = np.asarray((await static.embed(docs)).vectors)
    finally:
        await static.close()
    assert int(np.argmax(d @ q)) == 0


@pytest.mark.slow
def test_make_derived_models_builds_both_into_an_empty_cache(tmp_path):
    # What `make derived-models` runs on a fresh machine: under `python -m` the module is
    # `__main__`, and the builder child must still find it by its import name.
    env = {**os.environ, "LOOM_INFERENCE_DERIVED_MODELS_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "loom_inference.backends.minilm_derived", "--ensure-all"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = sorted(p.name for p in tmp_path.iterdir() if (p / "manifest.json").exists())
    assert len(built) == 2 and all(name in proc.stdout for name in built), (built, proc.stdout)
