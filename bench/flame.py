"""py-spy profiles of a bench's processes, summarised as text: where a process's CPU goes.

`Profiler` records a running process with `py-spy record --format raw` (collapsed stacks, idle
samples left out, so a sample is CPU time); `summary()` reads the stacks back into
- categories: the share of samples in which any frame belongs to a library or layer (inclusive:
  FastStream's middlewares, OpenTelemetry, Prometheus, logging, the NATS client, asyncpg, ...);
- the functions where most samples end (self time).

    .venv/bin/python bench/gateway.py --quick --profile /tmp/prof   # writes <process>-<phase>.txt
    .venv/bin/python bench/flame.py /tmp/prof/orchestrator-chat.txt  # its summary again

py-spy samples from outside the process (no code change), but on 2 cores it takes CPU from what
it measures: a profiled run's timings are not comparable with an unprofiled one's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"

# py-spy names OpenTelemetry's files (a namespace package) without their `opentelemetry/` unless
# recorded with --full-filenames, as Profiler does: those short names too.
OTEL_SHORT = r"^(trace|sdk|context|propagate|propagators|attributes|baggage|semconv|instrumentation)/"

# Inclusive categories: a sample counts for a category when one of its frames' files matches.
CATEGORIES = {
    "faststream (all)": r"(^|/)faststream/",
    "faststream OpenTelemetry middleware": r"(^|/)faststream/(_internal/)?(nats/)?opentelemetry/",
    "faststream Prometheus middleware": r"(^|/)faststream/(_internal/)?(nats/)?prometheus/",
    "faststream logging (its log calls)": r"(^|/)faststream/_internal/(log|logger)|(^|/)faststream/.*logging",
    "opentelemetry (any caller)": r"(^|/)opentelemetry/|" + OTEL_SHORT,
    "prometheus_client": r"(^|/)prometheus_client/",
    "stdlib logging + structlog": r"(^|/)logging/__init__\.py|(^|/)structlog/",
    "nats client (nats-py)": r"(^|/)nats/(aio|js|protocol)/",
    "pydantic": r"(^|/)pydantic(_core)?/",
    "json encode/decode": r"(^|/)json/|orjson",
    "asyncpg": r"(^|/)asyncpg/",
    "grpc": r"(^|/)grpc/",
    "HTTP server (uvicorn/h11/httptools/granian)": r"(^|/)(uvicorn|h11|httptools|granian)/",
    "starlette/fastapi": r"(^|/)(starlette|fastapi)/",
}
LOOM = r"(^|/)loom_[a-z]+/"  # Loom's own code: counted where a sample's innermost frame is in it

# Exclusive layers: a sample goes to the layer of its innermost frame that belongs to one (first
# pattern that matches, in this order), so a middleware's share is its own work and what it calls
# in the standard library, not the handler it wraps (its inclusive share above includes that).
LAYERS = {
    "OpenTelemetry (faststream's middleware + SDK)": r"(^|/)faststream/(_internal/)?(nats/)?opentelemetry/|"
                                                     r"(^|/)opentelemetry/|" + OTEL_SHORT,
    "Prometheus (faststream's middleware + client)": r"(^|/)faststream/(_internal/)?(nats/)?prometheus/|"
                                                     r"(^|/)prometheus_client/",
    "logging (faststream's middleware, stdlib, structlog)": r"(^|/)faststream/middlewares/logging|"
                                                            r"(^|/)faststream/_internal/logger|"
                                                            r"(^|/)logging/__init__\.py|(^|/)structlog/",
    "faststream (rest)": r"(^|/)faststream/",
    "nats client": r"(^|/)nats/(aio|js|protocol)/",
    "pydantic": r"(^|/)pydantic(_core)?/",
    "json": r"(^|/)json/|orjson",
    "asyncpg": r"(^|/)asyncpg/",
    "grpc": r"(^|/)grpc/",
    "HTTP server": r"(^|/)(uvicorn|h11|httptools|granian)/",
    "starlette/fastapi (incl. FastAPI's telemetry)": r"(^|/)(starlette|fastapi|sse_starlette)/",
    "loom code": LOOM,
}


def layer_of(frames: list[tuple[str, str]]) -> str:
    if frames and frames[-1][0] == EVENT_LOOP_LEAF:
        return LOOP
    for _, file in reversed(frames):
        for name, pattern in LAYERS.items():
            if re.search(pattern, file):
                return name
    return "other (stdlib, asyncio)"
# A sample whose innermost Python frame is the loop's entry ran in uvloop's C code (I/O, timers)
# or waited, runnable, for a core after the loop woke up (py-spy counts a runnable thread as
# busy): on a loaded machine that share is inflated, so `python_share` (the other samples) is
# what the per-layer shares are read against.
EVENT_LOOP_LEAF = "Runner.run"
LOOP = "uvloop C code or runnable-waiting (innermost frame: the loop)"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


class Profiler:
    """`py-spy record` of one process while a block runs (`with Profiler(pid, path): ...`)."""

    def __init__(self, pid: int, out: Path, rate: int = 500):
        self.pid, self.out, self.rate = pid, out, rate
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Profiler:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([str(PY_SPY), "record", "--pid", str(self.pid), "--rate", str(self.rate),
                                      "--format", "raw", "--output", str(self.out), "--nonblocking",
                                      "--full-filenames"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def __exit__(self, *exc) -> None:
        assert self.proc is not None
        self.proc.send_signal(2)  # SIGINT: py-spy writes what it has and exits
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def read_stacks(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """[(frames root first as (function, file), samples)] of a collapsed-stack file."""
    stacks = []
    for line in path.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        frames = []
        for part in body.split(";"):
            m = _FRAME.match(part)
            frames.append((m["func"], m["file"]) if m else (part, ""))
        stacks.append((frames, int(count)))
    return stacks


def summary(path: Path, top: int = 12) -> dict:
    """{samples, categories: {name: share}, self: [(function file, share)]} of one profile."""
    stacks = read_stacks(path)
    total = sum(n for _, n in stacks) or 1
    cats: Counter[str] = Counter()
    selfs: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    for frames, n in stacks:
        layers[layer_of(frames)] += n
        files = [f for _, f in frames]
        for name, pattern in CATEGORIES.items():
            if any(re.search(pattern, f) for f in files):
                cats[name] += n
        if frames and frames[-1][0] == EVENT_LOOP_LEAF:
            cats[LOOP] += n
        if frames and re.search(LOOM, frames[-1][1]):
            cats["loom code (self)"] += n
        if frames:
            func, file = frames[-1]
            selfs[f"{func} ({short(file)})"] += n
    return {"samples": total, "python_share": 1 - cats[LOOP] / total,
            "categories": {k: v / total for k, v in cats.most_common()},
            "layers": {k: v / total for k, v in layers.most_common()},
            "self": [(k, v / total) for k, v in selfs.most_common(top)]}


def per_unit(path: Path, units: int, rate: int, top: int = 40) -> dict:
    """Milliseconds of samples per unit of work (a chat run, ...) by function, inclusive (any
    frame of the sample) and self (the innermost frame), of a profile recorded at `rate` Hz.
    CPU time only where nothing else ran on the profiled process's cores (`bench/chat_cpu.py
    --profile` pins it alone to one): py-spy counts a thread that is runnable but waiting for a
    core as busy."""
    per = 1000.0 / rate / max(1, units)
    inclusive: Counter[str] = Counter()
    selfs: Counter[str] = Counter()
    total = 0
    for frames, n in read_stacks(path):
        total += n
        for name in {f"{func} ({short(file)})" for func, file in frames}:
            inclusive[name] += n
        if frames:
            func, file = frames[-1]
            selfs[f"{func} ({short(file)})"] += n
    return {"ms": total * per, "inclusive": [(k, v * per) for k, v in inclusive.most_common(top)],
            "self": [(k, v * per) for k, v in selfs.most_common(top)]}


def short(file: str) -> str:
    """The path from the package on (site-packages/x/y.py -> x/y.py)."""
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1].lstrip("/")
    return file


def render(name: str, s: dict) -> str:
    lines = [f"{name}: {s['samples']} samples (idle left out), {s['python_share'] * 100:.0f} % in Python frames",
             "  inclusive share by layer (of all samples):"]
    lines += [f"    {share * 100:5.1f} %  {cat}" for cat, share in s["categories"].items() if share >= 0.005]
    lines.append("  exclusive share by layer (innermost frame's layer; of all samples):")
    lines += [f"    {share * 100:5.1f} %  {layer}" for layer, share in s["layers"].items() if share >= 0.005]
    lines.append("  top self time:")
    lines += [f"    {share * 100:5.1f} %  {func}" for func, share in s["self"]]
    return "\n".join(lines)


if __name__ == "__main__":
    files = [a for a in sys.argv[1:] if not a.startswith("-")]  # `make bench` passes --quick to every bench/*.py
    if not files:
        print("usage: bench/flame.py PROFILE.txt ... (written by bench/gateway.py --profile DIR)")
    for arg in files:
        print(render(Path(arg).name, summary(Path(arg))))
