"""The numbers of a report, as pure functions: latency percentiles, rates, threshold verdicts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass


def percentile(samples: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between closest ranks (numpy's
    default); None for no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(samples_s: Sequence[float], errors: int, concurrency: int) -> dict:
    """TTFT samples (seconds) of one channel at one concurrency, as the report keeps them (ms)."""
    ms = [s * 1000.0 for s in samples_s]

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 2)

    return {"concurrency": concurrency, "requests": len(ms) + errors, "errors": errors,
            "p50_ms": r(percentile(ms, 50)), "p95_ms": r(percentile(ms, 95)), "p99_ms": r(percentile(ms, 99)),
            "mean_ms": r(sum(ms) / len(ms) if ms else None), "samples_ms": [round(x, 2) for x in ms]}


def rate(flags: Iterable[bool]) -> float | None:
    values = list(flags)
    return round(sum(values) / len(values), 4) if values else None


@dataclass(frozen=True)
class Verdict:
    metric: str
    channel: str
    value: float | None
    threshold: float
    higher_is_better: bool

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None  # not measured: neither passed nor failed
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold

    def as_dict(self) -> dict:
        return {**asdict(self), "pass": self.passed}
