"""llama.cpp through llama-cpp-python's low-level API: the only module that imports llama_cpp.

`LlamaCppRunner` owns one model and ONE context with `n_seq_max = max_parallel` and a unified
KV cache; `execute(batch)` is one `llama_decode` carrying every sequence's tokens (per-token
`seq_id`), followed by sampling each sequence with its own sampler chain (grammar, penalties,
top-k, top-p, temperature, seeded dist). `LlamaCppEmbedder` serves GGUF embedding models.
Everything here is blocking and runs on the engine's bridge thread.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading

import llama_cpp as L
import numpy as np

from loom_inference.backends import json_grammar
from loom_inference.backends.logits import kv_cache_bytes, log_probs, normalized
from loom_inference.engine.scheduler import Batch, SlotOpen, StepResult
from loom_inference.engine.types import BackendError, EmbedResult, ModelInfo

_init_lock = threading.Lock()
_initialised = False


def _quiet(level, text, user_data):  # llama.cpp logs to stderr by default; keep service logs JSON
    return None


_LOG_CB = L.llama_log_callback(_quiet)  # module-level: ctypes callbacks must outlive the call


def _backend_init() -> None:
    global _initialised
    with _init_lock:
        if not _initialised:
            L.llama_log_set(_LOG_CB, ctypes.c_void_p(0))
            L.llama_backend_init()
            _initialised = True


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity under taskset or a cpuset), not the host's:
    a thread per host CPU on a 2-CPU slice of a large machine would thrash."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (not Linux)
        return max(1, os.cpu_count() or 1)


def json_schema_to_gbnf(schema_json: str) -> str:
    """JSON schema -> GBNF grammar text (llama-cpp-python's converter; see json_grammar.py)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf as convert

    return json_grammar.strict_strings(convert(json_grammar.unrollable(schema_json)))


def pin_device(device: str | None) -> int:
    """GPU pinning: `cuda:1` -> CUDA_VISIBLE_DEVICES=1 (before the first CUDA use) and main_gpu 0."""
    if not device or device == "cpu":
        return 0
    index = device.split(":", 1)[1] if ":" in device else device
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", index)
    return 0


class _Model:
    """A loaded GGUF: model pointer, vocabulary and metadata."""

    def __init__(self, path: str, *, n_gpu_layers: int = 0, device: str | None = None) -> None:
        _backend_init()
        params = L.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        params.main_gpu = pin_device(device)
        self.ptr = L.llama_model_load_from_file(path.encode(), params)
        if not self.ptr:
            raise BackendError(f"could not load model file {path}")
        self.vocab = L.llama_model_get_vocab(self.ptr)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self._pieces: dict[int, bytes] = {}

    def metadata(self) -> dict[str, str]:
        out: dict[str, str] = {}
        buf = ctypes.create_string_buffer(1 << 16)
        for i in range(L.llama_model_meta_count(self.ptr)):
            L.llama_model_meta_key_by_index(self.ptr, i, buf, len(buf))
            key = buf.value.decode(errors="replace")
            L.llama_model_meta_val_str_by_index(self.ptr, i, buf, len(buf))
            out[key] = buf.value.decode(errors="replace")
        return out

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        data = text.encode()
        cap = len(data) + 8
        arr = (L.llama_token * cap)()
        n = L.llama_tokenize(self.vocab, data, len(data), arr, cap, add_bos, True)
        if n < 0:
            arr = (L.llama_token * -n)()
            n = L.llama_tokenize(self.vocab, data, len(data), arr, -n, add_bos, True)
        return list(arr[:n])

    def token_bytes(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = L.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = L.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
            piece = self._pieces[token] = buf.raw[:n]
        return piece

    def close(self) -> None:
        if self.ptr:
            L.llama_model_free(self.ptr)
            self.ptr = None


class LlamaCppRunner:
    """A `ModelRunner` over one llama.cpp context shared by `max_seqs` sequences."""

    def __init__(self, path: str, *, n_ctx: int = 8192, max_seqs: int = 8, n_batch: int = 512,
                 n_threads: int | None = None, flash_attention: bool = False, n_gpu_layers: int = 0,
                 device: str | None = None) -> None:
        self.model = _Model(path, n_gpu_layers=n_gpu_layers, device=device)
        params = L.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = max_seqs
        params.kv_unified = True  # one pool of KV cells for all sequences: no per-slot split
        threads = n_threads or usable_cpus()
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = (L.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attention
                                  else L.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        params.no_perf = True
        self.ctx = L.llama_init_from_model(self.model.ptr, params)
        if not self.ctx:
            raise BackendError(f"could not create a context for {path}")
        self.n_ctx = L.llama_n_ctx(self.ctx)
        self.max_seqs = max_seqs
        self.n_batch = n_batch
        self.context_length = L.llama_model_n_ctx_train(self.model.ptr)
        self._mem = L.llama_get_memory(self.ctx)
        self._batch = L.llama_batch_init(n_batch, 0, 1)
        self._samplers: dict[int, ctypes.c_void_p] = {}
        # Diagnostics: when set, each step records the two best raw logits of every sampled
        # sequence (slot -> [(token, logit), (token, logit)]): used to explain why a batched
        # greedy stream may differ from its solo run (a near tie flipped by float rounding).
        self.record_top2: list[dict[int, list[tuple[int, float]]]] | None = None
        self._want_logprobs: dict[int, int] = {}  # slot -> how many top alternatives
        # Slots sampled greedily with no grammar and no penalty: they skip the sampler chain.
        self._argmax: set[int] = set()
        # Greedy slots under a grammar (no penalty): the grammar sampler of their chain, asked
        # about the argmax alone first (see _grammar_argmax).
        self._grammar_argmax: dict[int, ctypes.c_void_p] = {}

    def memory_bytes(self) -> int:
        """The weights plus the KV cache, as Ollama's /api/ps `size` counts."""
        m = self.model.ptr
        head_dim = L.llama_model_n_embd(m) // max(1, L.llama_model_n_head(m))
        kv = kv_cache_bytes(self.model.metadata(), self.n_ctx, L.llama_model_n_layer(m), L.llama_model_n_head_kv(m),
                            head_dim)
        return int(L.llama_model_size(m)) + kv

    # ---- ModelRunner -----------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        return self.model.tokenize(text, add_bos)

    def token_bytes(self, token: int) -> bytes:
        return self.model.token_bytes(token)

    def is_eog(self, token: int) -> bool:
        return bool(L.llama_vocab_is_eog(self.model.vocab, token))

    def metadata(self) -> dict[str, str]:
        return self.model.metadata()

    def fim_tokens(self) -> tuple[int, int, int] | None:
        """(prefix, suffix, middle) tokens of a fill-in-the-middle model; None when it has none."""
        v = self.model.vocab
        ids = (L.llama_vocab_fim_pre(v), L.llama_vocab_fim_suf(v), L.llama_vocab_fim_mid(v))
        return None if min(ids) < 0 else ids

    def chat_template(self) -> str | None:
        raw = L.llama_model_chat_template(self.model.ptr, None)
        return raw.decode() if raw else None

    def execute(self, batch: Batch) -> StepResult:
        result = StepResult()
        for slot in batch.close:
            self._argmax.discard(slot)
            self._want_logprobs.pop(slot, None)
            self._grammar_argmax.pop(slot, None)
            sampler = self._samplers.pop(slot, None)
            if sampler:
                L.llama_sampler_free(sampler)
        if batch.reset:
            # Nothing live or cached: reset the cache so new sequences start at cell 0 again.
            # Without it the unified cache's head drifts up and attention spans more empty cells.
            L.llama_memory_clear(self._mem, False)  # metadata only: zeroing ~150 MB costs a TTFT
        else:
            for slot, start in batch.evict:
                L.llama_memory_seq_rm(self._mem, slot, start, -1)
        for src, dst, n in batch.share:  # cells of a unified cache can belong to several sequences
            L.llama_memory_seq_cp(self._mem, src, dst, 0, n)
        for spec in batch.open:
            try:
                chain, grammar = self._sampler_chain(spec)
                self._samplers[spec.slot] = chain
                s = spec.sampling
                if s.logprobs is not None:
                    self._want_logprobs[spec.slot] = s.logprobs
                if s.greedy and not s.penalized:
                    if grammar is None:
                        self._argmax.add(spec.slot)
                    else:
                        self._grammar_argmax[spec.slot] = grammar
            except Exception as exc:  # one bad request must not fail the others in the batch
                result.failed[spec.slot] = str(exc)
        b = self._batch
        b.n_tokens = 0
        sample_at: dict[int, int] = {}
        for entry in batch.entries:
            if entry.slot in result.failed:
                continue
            for j, token in enumerate(entry.tokens):
                i = b.n_tokens
                b.token[i] = token
                b.pos[i] = entry.start_pos + j
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = entry.slot
                last = j == len(entry.tokens) - 1
                b.logits[i] = 1 if (last and entry.sample) else 0
                b.n_tokens += 1
            if entry.sample:
                sample_at[entry.slot] = b.n_tokens - 1
        if b.n_tokens == 0:
            return result
        rc = L.llama_decode(self.ctx, b)
        if rc != 0:
            raise BackendError(f"llama_decode returned {rc}")
        if self.record_top2 is not None:
            self.record_top2.append({slot: self._top2(idx) for slot, idx in sample_at.items()})
        for slot, idx in sample_at.items():
            if slot in self._argmax:  # plain greedy: a numpy argmax, ~7x cheaper than the sampler
                logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, idx), shape=(self.model.n_vocab,))
                result.sampled[slot] = int(logits.argmax())
            elif slot in self._grammar_argmax:
                result.sampled[slot] = self._grammar_argmax_sample(slot, idx)
            else:
                result.sampled[slot] = L.llama_sampler_sample(self._samplers[slot], self.ctx, idx)
            if slot in self._want_logprobs:
                logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, idx), shape=(self.model.n_vocab,))
                result.logprobs[slot] = log_probs(logits, result.sampled[slot], self._want_logprobs[slot])
        return result

    def _grammar_argmax_sample(self, slot: int, idx: int) -> int:
        """Greedy under a grammar, as llama.cpp's own common sampler does it: ask the grammar about
        the argmax alone, and only if it refuses that token filter the whole vocabulary. The
        grammar sampler checks every candidate it is given, and this model's vocabulary has 262k
        tokens: filtering all of them on every step made constrained decoding ~30x slower than
        free decoding, while the argmax is allowed on most steps. Greedy either way: the argmax,
        when allowed, is the best allowed token."""
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, idx), shape=(self.model.n_vocab,))
        token = int(logits.argmax())
        one = L.llama_token_data(token, float(logits[token]), 0.0)
        candidates = L.llama_token_data_array(ctypes.pointer(one), 1, -1, False)
        L.llama_sampler_apply(self._grammar_argmax[slot], ctypes.byref(candidates))
        if one.logit == -math.inf:  # refused: the chain filters every token and picks the best
            return L.llama_sampler_sample(self._samplers[slot], self.ctx, idx)
        L.llama_sampler_accept(self._samplers[slot], token)  # the grammar advances past it
        return token

    def _top2(self, idx: int) -> list[tuple[int, float]]:
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, idx), shape=(self.model.n_vocab,))
        best = np.argpartition(logits, -2)[-2:]
        best = best[np.argsort(-logits[best])]
        return [(int(t), float(logits[t])) for t in best]

    def _sampler_chain(self, spec: SlotOpen):
        """The slot's sampler chain, and its grammar sampler (owned by the chain) or None."""
        s = spec.sampling
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        grammar = None
        if spec.grammar:
            grammar = L.llama_sampler_init_grammar(self.model.vocab, spec.grammar.encode(), b"root")
            if not grammar:
                L.llama_sampler_free(chain)
                raise BackendError("the grammar did not compile")
            L.llama_sampler_chain_add(chain, grammar)
        if s.penalized:
            # This library's penalties sampler takes n_vocab first, then the look-back window
            # (checked: a window of 1 penalizes only the last accepted token).
            last_n = self.n_ctx if s.repeat_last_n < 0 else s.repeat_last_n
            penalties = L.llama_sampler_init_penalties(self.model.n_vocab, last_n, s.repeat_penalty or 1.0,
                                                       s.frequency_penalty, s.presence_penalty)
            L.llama_sampler_chain_add(chain, penalties)
        if s.greedy:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
            return chain, grammar
        seed = (s.seed if s.seed is not None and s.seed >= 0 else L.LLAMA_DEFAULT_SEED) & 0xFFFFFFFF
        if s.mirostat:  # Mirostat picks the token itself, in place of top-k/top-p and dist
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(s.temperature))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_mirostat(
                self.model.n_vocab, seed, s.mirostat_tau, s.mirostat_eta, 100) if s.mirostat == 1
                else L.llama_sampler_init_mirostat_v2(seed, s.mirostat_tau, s.mirostat_eta))
            return chain, grammar
        if s.top_k and s.top_k > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(s.top_k))
        if s.top_p and s.top_p < 1.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(s.top_p, 1))
        if s.min_p > 0.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_min_p(s.min_p, 1))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(s.temperature))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed))
        return chain, grammar

    def close(self) -> None:
        for sampler in self._samplers.values():
            L.llama_sampler_free(sampler)
        self._samplers.clear()
        if self.ctx:
            L.llama_batch_free(self._batch)
            L.llama_free(self.ctx)
            self.ctx = None
        self.model.close()


class LlamaCppEmbedder:
    """A GGUF embedding model (mean pooling as the GGUF says); blocking, run it on a thread."""

    def __init__(self, name: str, path: str, *, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        self.model = _Model(path)
        params = L.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = n_ctx
        params.embeddings = True
        meta = self.model.metadata()
        if f"{meta.get('general.architecture', '')}.pooling_type" not in meta:
            params.pooling_type = L.LLAMA_POOLING_TYPE_MEAN  # a decoder GGUF has none: mean-pool it
        params.n_seq_max = 64
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = n_threads or usable_cpus()
        self.ctx = L.llama_init_from_model(self.model.ptr, params)
        if not self.ctx:
            raise BackendError(f"could not create an embedding context for {path}")
        self.n_ctx = n_ctx
        self.dimension = L.llama_model_n_embd(self.model.ptr)
        self.info = ModelInfo(name=name, backend="llamacpp", kind="embedding", context_length=n_ctx,
                              embedding_dimension=self.dimension, path=path, loaded=True,
                              size_bytes=os.path.getsize(path))
        self._lock = threading.Lock()

    def embed_sync(self, inputs: list[str], normalize: bool = True) -> EmbedResult:
        """Pack as many inputs as fit into one decode (one seq_id each), pool per sequence."""
        with self._lock:
            vectors: list[list[float]] = []
            total = 0
            toks = [self.model.tokenize(t, True)[: self.n_ctx] for t in inputs]
            i = 0
            while i < len(toks):
                batch = L.llama_batch_init(self.n_ctx, 0, 1)
                try:
                    group: list[int] = []
                    while i < len(toks) and len(group) < 64 and batch.n_tokens + len(toks[i]) <= self.n_ctx:
                        seq = len(group)
                        for p, t in enumerate(toks[i]):
                            k = batch.n_tokens
                            batch.token[k], batch.pos[k], batch.n_seq_id[k] = t, p, 1
                            batch.seq_id[k][0], batch.logits[k] = seq, 1
                            batch.n_tokens += 1
                        group.append(i)
                        i += 1
                    L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
                    if L.llama_decode(self.ctx, batch) != 0:
                        raise BackendError("embedding decode failed")
                    for seq, idx in enumerate(group):
                        ptr = L.llama_get_embeddings_seq(self.ctx, seq)
                        vec = [float(ptr[d]) for d in range(self.dimension)]
                        vectors.append(normalized(vec) if normalize else vec)
                        total += len(toks[idx])
                finally:
                    L.llama_batch_free(batch)
            return EmbedResult(self.info.name, self.dimension, vectors, total)

    def close(self) -> None:
        if self.ctx:
            L.llama_free(self.ctx)
            self.ctx = None
        self.model.close()

