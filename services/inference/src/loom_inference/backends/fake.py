"""A deterministic `ModelRunner` for unit tests: no model, same batching contract.

Also a route's `backend = "fake"` (router/factory.py): an instant model behind the real engine
(queue, scheduler, `max_waiting`), so load tests measure the platform's control plane alone.

Tokens are words of a tiny vocabulary; the next token is a pure function of the sequence's
last token and its own seed, so batching can never change a sequence's output, and a test
can tell streams apart. Token 0 is end-of-generation; it is produced after `eos_after` tokens
when set.
"""

from __future__ import annotations

import threading

from loom_inference.engine.scheduler import Batch, StepResult

VOCAB = ["<eos>"] + [f"w{i} " for i in range(1, 100)]


class FakeRunner:
    def __init__(self, *, n_ctx: int = 4096, max_seqs: int = 4, n_batch: int = 64, eos_after: int | None = None,
                 step_delay_s: float = 0.0, fail_grammar: str | None = None, record: bool = True) -> None:
        self.n_ctx, self.max_seqs, self.n_batch = n_ctx, max_seqs, n_batch
        self.context_length = n_ctx
        self.eos_after = eos_after
        self.step_delay_s = step_delay_s
        self.fail_grammar = fail_grammar
        self.record = record  # off for a served fake: a long load would keep every step
        self.batches: list[Batch] = []          # every step, for assertions
        self.open_slots: set[int] = set()
        self.threads: set[str] = set()
        self._count: dict[int, int] = {}

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        ids = [1 + (sum(map(ord, w)) % 99) for w in text.split()]
        return ([1] if add_bos else []) + ids

    def token_bytes(self, token: int) -> bytes:
        return VOCAB[token].encode()

    def is_eog(self, token: int) -> bool:
        return token == 0

    def chat_template(self) -> str | None:
        return None

    def metadata(self) -> dict[str, str]:
        return {"general.architecture": "gemma3"}

    def execute(self, batch: Batch) -> StepResult:
        self.threads.add(threading.current_thread().name)
        if self.record:
            self.batches.append(batch)
        if self.step_delay_s:
            threading.Event().wait(self.step_delay_s)
        out = StepResult()
        for slot in batch.close:
            self.open_slots.discard(slot)
        for slot, start in batch.evict:
            assert slot not in self.open_slots or start > 0, "cells of a live sequence evicted"
        for spec in batch.open:
            if self.fail_grammar is not None and spec.grammar == self.fail_grammar:
                out.failed[spec.slot] = "the grammar did not compile"
                continue
            assert spec.slot not in self.open_slots, "slot reused before it was freed"
            self.open_slots.add(spec.slot)
            self._count[spec.slot] = 0
        for e in batch.entries:
            if e.sample and e.slot not in out.failed:
                self._count[e.slot] += 1
                if self.eos_after is not None and self._count[e.slot] > self.eos_after:
                    out.sampled[e.slot] = 0
                else:
                    out.sampled[e.slot] = 1 + (e.tokens[-1] * 7 + 3) % 99
        return out

    def close(self) -> None:
        self.open_slots.clear()
