"""What the bundled MiniLM costs per chunk here, and how close each ONNX Runtime variant comes to
what the CPU allows (issue 23 item 5: >= 60 chunks/s end to end with MiniLM quality).

    .venv/bin/python bench/rag_embed_cost.py [--variants int8,fp32,int8-spin] [--profile]

1. The chunks: those of `bench/rag.py --ingest-only` (40 documents of 30 corpus chunks), split
   as rag splits them (240 tokens at most); their token counts.
2. Arithmetic: multiply-accumulates (MACs) per chunk for all-MiniLM-L6-v2 (6 layers, 384 wide,
   feed-forward 1536, attention over the chunk's own tokens), against this CPU's peak: cores x
   clock x MACs per cycle per core (`--fp32-macs`, `--int8-macs`: defaults for AMD Zen 4, whose
   AVX-512 runs on two 256-bit pipes: 16 float32 FMAs, 64 int8 VNNI MACs per cycle).
3. Measured: the served files (`int8`: MatMulNBits, 8-bit weights in blocks of 32, int8
   products; `fp32`: the same graph in float32; the service picks by CPU) fed
   as the service feeds it (length buckets of at most 64 texts and 8192 padded tokens,
   engine/embed_batching.plan_batches), `--threads` intra-op threads, after one warm-up pass:
   chunks/s, achieved MACs/s, share of the int8 bound; `int8-spin` lets ONNX Runtime's threads
   spin between operators (the service turns spinning off: on a shared box it takes CPU from the
   other services). `--profile`: time per operator type.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LAYERS, HIDDEN, FFN = 6, 384, 1536


def chunks(docs: int, paragraphs: int) -> list[str]:
    import rag_corpus

    from loom_rag.domain.chunking import ChunkingConfig
    from loom_rag.ingest.cleaning import clean
    from loom_rag.ingest.splitter import split_document
    from loom_rag.ingest.tokenizer import WordPieceTokenizer

    texts, tok, rule, out = rag_corpus.texts(120_000)[-docs * paragraphs:], WordPieceTokenizer(), ChunkingConfig(), []
    for d in range(docs):
        text = clean("\n\n".join(texts[d * paragraphs:(d + 1) * paragraphs]), remove_extra_spaces=True,
                     remove_urls_emails=False)
        out += [c.content for c in split_document(text, rule, tok)]
    return out


def macs_per_chunk(tokens: int) -> tuple[float, float]:
    """(MACs in the weight matrices, MACs in attention scores and mixing) for one chunk."""
    dense = LAYERS * tokens * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
    attention = LAYERS * 2 * tokens * tokens * HIDDEN
    return dense, attention


def build(variant: str) -> Path:
    """One of the served ONNX files (built once into the derived-models cache)."""
    from loom_inference.backends import minilm_derived
    from loom_inference.settings import InferenceSettings

    precision = variant.removesuffix("-spin")
    if precision not in minilm_derived.ONNX_FILES:
        raise SystemExit(f"unknown variant {variant!r}: int8, fp32, int8-spin or fp32-spin")
    return minilm_derived.ensure("onnx", InferenceSettings().derived_models) / minilm_derived.ONNX_FILES[precision]


def measure(path: Path, ids: list[list[int]], threads: int, profile: bool,
            spin: bool = False) -> tuple[np.ndarray, float, dict]:
    import onnxruntime as ort

    from loom_inference.engine.embed_batching import plan_batches

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.enable_profiling = profile
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    batches = plan_batches([len(i) for i in ids], max_batch=64, max_batch_tokens=8192)

    def run(batch: list[int]) -> np.ndarray:
        longest = max(len(ids[i]) for i in batch)
        x = np.zeros((len(batch), longest), dtype=np.int64)
        for row, i in enumerate(batch):
            x[row, :len(ids[i])] = ids[i]
        mask = (x != 0).astype(np.int64)
        return session.run(None, {"input_ids": x, "attention_mask": mask, "token_type_ids": np.zeros_like(x)})[0]

    run(batches[-1])  # warm-up: the longest bucket
    out = np.empty((len(ids), HIDDEN), dtype=np.float32)
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        out[batch] = run(batch)
    elapsed = time.perf_counter() - started
    measure.cpu_s = time.process_time() - cpu  # all threads of this process
    ops: dict[str, float] = defaultdict(float)
    if profile:
        for e in json.loads(Path(session.end_profiling()).read_text()):
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
                ops[e["args"]["op_name"]] += e["dur"] / 1e6
    return out / np.linalg.norm(out, axis=1, keepdims=True), elapsed, dict(ops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="int8,fp32")
    parser.add_argument("--chunks", type=int, default=240, help="how many of the bench's 740 chunks (spread evenly)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ghz", type=float, default=2.6, help="sustained clock (this VM's TSC runs at 2.6)")
    parser.add_argument("--fp32-macs", type=int, default=16, help="float32 FMAs per cycle per core")
    parser.add_argument("--int8-macs", type=int, default=64, help="int8 MACs per cycle per core (VNNI)")
    parser.add_argument("--profile", action="store_true", help="time per operator type")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    from tokenizers import Tokenizer

    from loom_inference.backends.minilm_derived import MAX_TOKENS, bundled_path

    texts = chunks(40, 30)
    texts = [texts[i] for i in np.linspace(0, len(texts) - 1, min(args.chunks, len(texts))).astype(int)]
    tok = Tokenizer.from_file(str(Path(bundled_path()) / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    ids = [e.ids for e in tok.encode_batch(texts)]
    lengths = np.array([len(i) for i in ids])
    dense, attention = (float(np.mean([m[k] for m in map(macs_per_chunk, lengths)])) for k in (0, 1))
    cores = args.threads
    peak_fp32 = cores * args.ghz * 1e9 * args.fp32_macs
    peak_int8 = cores * args.ghz * 1e9 * args.int8_macs
    bound_fp32 = peak_fp32 / (dense + attention)
    bound_int8 = 1 / (dense / peak_int8 + attention / peak_fp32)  # attention stays float32
    figures: dict = {"chunks": len(ids), "tokens_mean": float(lengths.mean()), "tokens_p90": float(np.percentile(
        lengths, 90)), "gmacs_per_chunk": (dense + attention) / 1e9, "attention_share": attention / (dense + attention),
        "cores": cores, "ghz": args.ghz, "peak_fp32_gmacs": peak_fp32 / 1e9, "peak_int8_gmacs": peak_int8 / 1e9,
        "bound_fp32_chunks_per_s": bound_fp32, "bound_int8_chunks_per_s": bound_int8,
        "load_1min": os.getloadavg()[0], "variants": {}}
    print(f"{len(ids)} chunks, {lengths.mean():.0f} tokens each on average; {(dense + attention) / 1e9:.2f} GMAC "
          f"per chunk ({attention / (dense + attention):.0%} in attention)")
    print(f"peak on {cores} cores at {args.ghz} GHz: float32 {peak_fp32 / 1e9:.0f} GMAC/s -> at most "
          f"{bound_fp32:.0f} chunks/s; int8 dense layers {peak_int8 / 1e9:.0f} GMAC/s -> at most {bound_int8:.0f}")
    for variant in args.variants.split(","):
        path = build(variant)
        _, elapsed, ops = measure(path, ids, args.threads, args.profile, spin=variant.endswith("-spin"))
        rate = len(ids) / elapsed
        cpu_ms = measure.cpu_s * 1000 / len(ids)
        # CPU time per chunk hardly depends on other load: the rate all cores would give at it.
        row = {"chunks_per_s": rate, "gmacs_per_s": rate * (dense + attention) / 1e9,
               "of_int8_bound": rate / bound_int8, "cpu_ms_per_chunk": cpu_ms,
               "chunks_per_s_at_that_cpu_on_all_cores": cores * 1000 / cpu_ms,
               "int8_efficiency_by_cpu": cores * 1000 / cpu_ms / bound_int8}
        if ops:
            total = sum(ops.values())
            row["op_share"] = {k: round(v / total, 3) for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:8]}
        figures["variants"][variant] = row
        print(f"{variant:<12}{rate:8.1f} chunks/s  {row['gmacs_per_s']:7.1f} GMAC/s  "
              f"{row['of_int8_bound']:.0%} of the int8 bound; CPU {cpu_ms:.1f} ms per chunk -> "
              f"{row['chunks_per_s_at_that_cpu_on_all_cores']:.1f} chunks/s on {cores} idle cores "
              f"({row['int8_efficiency_by_cpu']:.0%} of the bound)", flush=True)
        if ops:
            print("    ", row["op_share"])
    figures["load_1min_after"] = os.getloadavg()[0]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
