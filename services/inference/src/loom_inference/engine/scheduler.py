"""Continuous batching: decide what one `llama_decode` step carries, then apply its result.

There are no prefill and decode phases. Every step each running sequence just catches up:
a sequence whose prompt is fully in the KV cache feeds its last sampled token (one token);
a sequence still prefilling feeds the next chunk of its prompt, as much as the step's token
budget leaves after the decodes, so a long prompt never stalls the running streams for more
than one budget's worth of compute. Waiting sequences are admitted every step while a slot is
free and the KV cache can hold everything they might need (prompt + max_tokens), which is
the admission control that keeps `llama_decode` from running out of cells mid-stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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

    # Slots to free first (finished or aborted sequences): their KV cells and samplers.
    close: list[int] = field(default_factory=list)
    # Slots to give a fresh sampler chain (newly admitted sequences), before decoding.
    open: list[SlotOpen] = field(default_factory=list)
    # What one llama_decode call carries, one entry per sequence.
    entries: list[BatchEntry] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(len(e.tokens) for e in self.entries)


@dataclass
class StepResult:
    sampled: dict[int, int] = field(default_factory=dict)   # slot -> new token
    failed: dict[int, str] = field(default_factory=dict)    # slot -> error (e.g. bad grammar)


class Scheduler:
    def __init__(self, *, max_seqs: int, token_budget: int, kv_capacity: int,
                 queue: WaitingQueue | None = None) -> None:
        self.max_seqs = max_seqs
        self.token_budget = token_budget
        self.kv_capacity = kv_capacity
        self.waiting: WaitingQueue = queue or FcfsQueue()
        self.running: list[Sequence] = []
        self._free_slots = list(range(max_seqs))
        self._to_close: list[int] = []

    # ---- bookkeeping -----------------------------------------------------------------

    def add(self, seq: Sequence) -> None:
        self.waiting.push(seq)

    def has_work(self) -> bool:
        return bool(self.running or len(self.waiting) or self._to_close)

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
        else:
            self.waiting.remove(seq.request_id)

    # ---- one step --------------------------------------------------------------------

    def schedule(self) -> Batch:
        batch = Batch(close=self._to_close)
        self._to_close = []
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
            seq = self.waiting.pop()
            seq.slot = self._free_slots.pop(0)
            seq.status = SequenceStatus.RUNNING
            seq.scheduled = time.perf_counter()
            self.running.append(seq)
            batch.open.append(SlotOpen(seq.slot, seq.req.sampling, seq.req.grammar))
            budget -= self._prefill_chunk(batch, seq, budget)
        return batch

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
            if entry.sample and entry.slot in result.sampled:
                token = result.sampled[entry.slot]
                seq.output_ids.append(token)
                new_tokens.append((seq, token))
        return new_tokens
