"""What the stack benchmarks share: the chat app's graph, the fake model's inference config, and
what each process of a stack costs (resident memory, CPU time).

bench/gateway.py, bench/load.py and bench/soak.py import it (they run as scripts, so bench/ is
on their sys.path).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil

from loom_common.devstack import infra

PROMPT = "Write one sentence about the sea."
BUNDLED_CHAT = "gemma3:270m"
FAKE_CHAT = "fake"  # the inference service's `backend = "fake"` route (no model: the control plane alone)


@contextlib.contextmanager
def scratch_infra(prefix: str) -> Iterator[tuple[Path, infra.EmbeddedNats, infra.EmbeddedPostgres]]:
    """A new temporary directory with an embedded NATS and Postgres in it, stopped afterwards;
    the directory (~50 MB a run: Postgres, JetStream, the services' logs under home/) is
    removed, unless the block failed: then its logs are kept and their place printed."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    nats = infra.EmbeddedNats(root / "nats").start()
    pg = infra.EmbeddedPostgres(root / "pg").start()
    ok = False
    try:
        yield root, nats, pg
        ok = True
    finally:
        pg.stop()
        nats.stop()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"logs kept in {root / 'home'}", file=sys.stderr)


def chat_graph(model: str = BUNDLED_CHAT, max_tokens: int = 8) -> dict:
    """A chatflow start -> llm -> answer on `model`, the query as the prompt, `max_tokens` long."""
    return {"nodes": [
        {"id": "start", "data": {"type": "start"}},
        {"id": "llm", "data": {"type": "llm", "model": {"name": model, "completion_params":
                                                        {"max_tokens": max_tokens, "temperature": 0}},
                               "prompt_template": [{"role": "user", "text": "{{#sys.query#}}"}]}},
        {"id": "ans", "data": {"type": "answer", "answer": "{{#llm.text#}}"}}],
        "edges": [{"source": "start", "target": "llm"}, {"source": "llm", "target": "ans"}]}


def fake_model_config(path: Path, *, streams: int, step_delay_s: float = 0.0,
                      max_waiting: int | None = None) -> dict[str, str]:
    """Write an inference config.toml with the fake route sized for `streams` sequences at once
    (the fake model holds no KV cache: n_ctx costs nothing) and return inference's env for it.
    `step_delay_s` paces its tokens (every sequence advances once per step)."""
    waiting = streams if max_waiting is None else max_waiting
    path.write_text(
        "[performance]\n"
        f"max_parallel = {streams}\nmax_waiting = {waiting}\nn_ctx = {max(8192, 512 * streams)}\n\n"
        f'[[models]]\nname = "{FAKE_CHAT}"\nbackend = "fake"\n'
        f"parameters = {{ step_delay_s = {step_delay_s} }}\n")
    # The bundled chat model still loads at start unless told otherwise: not needed here.
    return {"LOOM_INFERENCE_CONFIG": str(path), "LOOM_INFERENCE_LOAD_MODELS_AT_START": "false"}


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(procs: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system) of each named process and its children so far."""
    out = {}
    for name, pid in procs.items():
        total = 0.0
        for p in process_tree(pid):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        out[name] = total
    return out


def rss_mb(procs: dict[str, int]) -> dict[str, float]:
    """Resident memory (MiB) of each named process and its children now."""
    out = {}
    for name, pid in procs.items():
        total = 0
        for p in process_tree(pid):
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        out[name] = round(total / 2**20, 1)
    return out


def memory_mb(procs: dict[str, int]) -> dict[str, dict[str, float]]:
    """Each named process tree's memory now (MiB): `rss` (resident; shared pages counted once per
    process that maps them, so a Postgres tree counts its shared buffers once per backend),
    `pss` (shared pages split among the processes sharing them: the tree's true share) and
    `uss` (pages only that tree's processes hold: what a leak in them would grow). Reads
    /proc/<pid>/smaps_rollup, so it costs a few ms a process: for sampling, not hot loops."""
    out = {}
    for name, pid in procs.items():
        rss = pss = uss = 0
        for p in process_tree(pid):
            with contextlib.suppress(psutil.Error):
                m = p.memory_full_info()
                rss, pss, uss = rss + m.rss, pss + m.pss, uss + m.uss
        out[name] = {"rss": round(rss / 2**20, 1), "pss": round(pss / 2**20, 1), "uss": round(uss / 2**20, 1)}
    return out


def stack_pids(stack, infra_pids: dict[str, int] | None = None) -> dict[str, int]:
    """Each service of a gateway_stack.Stack (and NATS, Postgres) by name -> its pid."""
    pids = {p.name: p.proc.pid for p in stack.procs if p.proc is not None}
    return {**pids, **(infra_pids or {})}
