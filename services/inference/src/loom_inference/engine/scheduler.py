"""Continuous batching: decide what one `llama_decode` step carries, then apply its result.

There are no prefill and decode phases. Every step each running sequence just catches up:
a sequence whose prompt is fully in the KV cache feeds its last sampled token (one token);
a sequence still prefilling feeds the next chunk of its prompt, as much as the step's token
budget leaves after the decodes, so a long prompt never stalls the running streams for more
than one budget's worth of compute. Waiting sequences are admitted every step while a slot is
free and the KV cache can hold everything they might need (prompt + max_tokens), which is
the admission control that keeps `llama_decode` from running out of cells mid-stream.
A new sequence starts from the longest prompt prefix some slot's cells already hold
(`prefix_cache.py`), so only the rest of its prompt is prefilled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from loom_inference.engine.prefix_cache import PrefixCache
from loom_inference.engine.queue import FcfsQueue, WaitingQueue
from loom_inference.engine.sequence import Sequence, SequenceStatus
from loom_inference.engine.types import SamplingParams


@dataclass
class BatchEntry:
    slot: int                  # KV sequence id
    tokens: list[int]          # tokens to feed this step (one when decoding, a chunk when prefilling)
    start_pos: int             # position of tokens[0] in the sequence
    sample: bool               # sample a token from the last one's logits


@dataclass
class SlotOpen:
    slot: int
    sampling: SamplingParams
    grammar: str | None


@dataclass
class Batch:
    """Plain data handed to the runner's thread: everything one step does to the model."""

    # Slots whose sequence ended (finished or aborted): free their samplers.
    close: list[int] = field(default_factory=list)
    # KV cells to drop, as (slot, from position); 0 drops the slot's cells entirely.
    evict: list[tuple[int, int]] = field(default_factory=list)
    # Prompt prefixes shared into a new slot, as (from slot, to slot, positions 0..n-1), after evict.
    share: list[tuple[int, int, int]] = field(default_factory=list)
    # Nothing is running or cached: the runner may wipe the whole cache (its cells restart at 0).
    reset: bool = False
    # Slots to give a fresh sampler chain (newly admitted sequences), before decoding.
    open: list[SlotOpen] = field(default_factory=list)
    # What one llama_decode call carries, one entry per sequence.
    entries: list[BatchEntry] = field(default_factory=list)

    @property
    def share_sources(self) -> set[int]:
        """Slots whose cells this step shares into another: they must not be dropped in it."""
        return {src for src, _, _ in self.share}

    @property
    def num_tokens(self) -> int:
        return sum(len(e.tokens) for e in self.entries)


@dataclass
class StepResult:
    sampled: dict[int, int] = field(default_factory=dict)   # slot -> new token
    failed: dict[int, str] = field(default_factory=dict)    # slot -> error (e.g. bad grammar)
    # slot -> (log-probability of the sampled token, [(token, log-probability)] most likely first),
    # for the slots whose request asked for logprobs
    logprobs: dict[int, tuple[float, list[tuple[int, float]]]] = field(default_factory=dict)


class Scheduler:
    def __init__(self, *, max_seqs: int, token_budget: int, kv_capacity: int,
                 queue: WaitingQueue | None = None, prefix_cache: bool = True) -> None:
        self.max_seqs = max_seqs
        self.token_budget = token_budget
        self.kv_capacity = kv_capacity
        self.waiting: WaitingQueue = queue or FcfsQueue()
        self.running: list[Sequence] = []
        self._free_slots = list(range(max_seqs))
        self._to_close: list[int] = []
        self._to_evict: list[tuple[int, int]] = []
        self.cache = PrefixCache(enabled=prefix_cache)

    # ---- bookkeeping -----------------------------------------------------------------

    def add(self, seq: Sequence) -> None:
        self.waiting.push(seq)

    def has_work(self) -> bool:
        return bool(self.running or len(self.waiting) or self._to_close or self._to_evict)

    @property
    def kv_reserved(self) -> int:
        return sum(s.reserved_tokens for s in self.running)

    def finish(self, seq: Sequence, status: SequenceStatus, error: str = "") -> None:
        """End a sequence wherever it is; its slot is freed at the start of the next step."""
        seq.finish(status, error)
        if seq in self.running:
            self.running.remove(seq)
            self._to_close.append(seq.slot)
            self._free_slots.append(seq.slot)
            if status == SequenceStatus.FINISHED_ERROR or not self.cache.enabled:
                self._to_evict.append((seq.slot, 0))
            else:  # the slot goes idle still holding what it computed
                self.cache.keep(seq.slot, (seq.req.prompt_ids + seq.output_ids)[: seq.kv_len])
        else:
            self.waiting.remove(seq.request_id)

    # ---- one step --------------------------------------------------------------------

    def schedule(self) -> Batch:
        batch = Batch(close=self._to_close, evict=self._to_evict)
        self._to_close, self._to_evict = [], []
        budget = self.token_budget
        for seq in self.running:  # decodes first: running streams never wait for prefills
            if seq.prefilled:
                pos = seq.prompt_len + len(seq.output_ids) - 1
                batch.entries.append(BatchEntry(seq.slot, [seq.output_ids[-1]], pos, True))
                budget -= 1
        for seq in self.running:  # then unfinished prefills continue
            if not seq.prefilled and budget > 0:
                budget -= self._prefill_chunk(batch, seq, budget)
        while budget > 0 and self._free_slots and self._admissible():
            if not self._place(batch, self.waiting.peek()):
                break
            seq = self.waiting.pop()
            seq.status = SequenceStatus.RUNNING
            seq.scheduled = time.perf_counter()
            self.running.append(seq)
            batch.open.append(SlotOpen(seq.slot, seq.req.sampling, seq.req.grammar))
            budget -= self._prefill_chunk(batch, seq, budget)
        # Idle slots' cached cells give way to what running sequences may still need.
        while self.kv_reserved + self.cache.resident_tokens > self.kv_capacity:
            slot = self.cache.evict_lru(keep=batch.share_sources)
            if slot is None:
                break
            batch.evict.append((slot, 0))
        batch.reset = not self.running and not self.cache.resident_tokens and bool(batch.close or batch.evict)
        return batch

    def _place(self, batch: Batch, seq: Sequence) -> bool:
        """Give `seq` a free slot, starting from the longest prefix of its prompt already computed."""
        computed = {s.slot: s.req.prompt_ids[: s.num_computed] for s in self.running if s.num_computed}
        place = self.cache.place(seq.req.prompt_ids, self._free_slots, computed,
                                 sharing=batch.share_sources)
        if place is None:
            return False
        self._free_slots.remove(place.slot)
        seq.slot = place.slot
        batch.evict.append((place.slot, place.trim_from))
        if place.share_from >= 0:
            batch.share.append((place.share_from, place.slot, place.reuse))
        seq.num_computed = seq.kv_len = seq.reused = place.reuse
        return True

    def _admissible(self) -> bool:
        head = self.waiting.peek()
        return head is not None and self.kv_reserved + head.reserved_tokens <= self.kv_capacity

    @staticmethod
    def _prefill_chunk(batch: Batch, seq: Sequence, budget: int) -> int:
        start = seq.num_computed
        end = min(seq.prompt_len, start + budget)
        batch.entries.append(BatchEntry(seq.slot, seq.req.prompt_ids[start:end], start, end == seq.prompt_len))
        return end - start

    def update(self, batch: Batch, result: StepResult) -> list[tuple[Sequence, int]]:
        """Advance every sequence the step touched; return (sequence, new token) pairs."""
        by_slot = {s.slot: s for s in self.running}
        new_tokens: list[tuple[Sequence, int]] = []
        for entry in batch.entries:
            seq = by_slot.get(entry.slot)
            if seq is None:
                continue
            if entry.slot in result.failed:
                self.finish(seq, SequenceStatus.FINISHED_ERROR, result.failed[entry.slot])
                continue
            if not seq.prefilled:
                seq.num_computed += len(entry.tokens)
            seq.kv_len = entry.start_pos + len(entry.tokens)
            if entry.sample and entry.slot in result.sampled:
                token = result.sampled[entry.slot]
                seq.output_ids.append(token)
                new_tokens.append((seq, token))
        return new_tokens
