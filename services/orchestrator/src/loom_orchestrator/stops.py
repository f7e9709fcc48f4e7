"""Stop requests a worker heard for runs it was not running (yet).

Every worker hears every stop (`runs.cancel.*`). A stop can arrive before the worker takes
the run (the request waited in the queue), so the worker used to look the stop up in the
RUN_CONTROL stream at every run start: one JetStream round trip on the path to the first
token. Instead it remembers the stops it heard, and looks one up only when its memory
cannot be sure to hold it:

- a stop always comes after its run's request was stored (the caller needs the run id the
  request returned), so the memory covers a run stored after this worker began listening;
- a stop forgotten to keep the memory bounded may belong to any run stored before it
  arrived, so runs stored before the newest forgotten stop are looked up again.

Times are wall clocks of different hosts (JetStream's storage stamp vs this worker's), so
both comparisons keep a margin for clock skew.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class StopsHeard:
    def __init__(self, capacity: int = 10_000, skew_s: float = 5.0) -> None:
        self.capacity, self.skew_s = capacity, skew_s
        self.listening_since: float | None = None  # wall clock; None = not listening yet
        self._stops: OrderedDict[str, tuple[str, float]] = OrderedDict()  # run id -> (reason, heard at)
        self._forgotten_at = 0.0  # when the newest forgotten stop was heard

    def listening(self, now: float | None = None) -> None:
        """The stop subscription is live from now on."""
        self.listening_since = time.time() if now is None else now

    def heard(self, run_id: str, reason: str, now: float | None = None) -> None:
        self._stops[run_id] = (reason, time.time() if now is None else now)
        self._stops.move_to_end(run_id)
        while len(self._stops) > self.capacity:
            _, (_, heard_at) = self._stops.popitem(last=False)
            self._forgotten_at = max(self._forgotten_at, heard_at)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._stops

    def reason(self, run_id: str) -> str | None:
        """The reason of a stop heard for this run, if any (it is forgotten: it was used)."""
        stop = self._stops.pop(run_id, None)
        return stop[0] if stop else None

    def covers(self, stored_at: float | None) -> bool:
        """Would a stop for a run whose request was stored at `stored_at` be in memory?"""
        if stored_at is None or self.listening_since is None:
            return False
        return stored_at > self.listening_since + self.skew_s and stored_at > self._forgotten_at + self.skew_s
