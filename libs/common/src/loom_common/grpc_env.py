"""gRPC's process-wide settings, which it reads from the environment once, when it is first
imported: every service's entry point calls `set_defaults()` before importing anything else.
A deployment's own values win (these are defaults only).

- GRPC_ENABLE_FORK_SUPPORT=false: rag and the orchestrator's document-extractor node fork a
  bounded parser child (loom_common.bounded; under uvloop a spawn is a plain fork()) beside live
  gRPC calls, and gRPC's fork handlers could then crash the child before it execs (in rag, two
  uploads at once failed as "needed more than 1024 MiB of memory (or crashed)"). No service
  uses gRPC in a forked child.
- GRPC_EXPERIMENTS without the EventEngine I/O stack: gRPC 1.85 does a stream's I/O on threads
  of its own (`event_engine`: 14 % of the orchestrator's CPU under perf), so every token of a
  model stream crosses threads before it reaches the event loop. The older I/O path, still
  shipped, halved the orchestrator's context switches per chat run (113 -> 59 on
  bench/gateway.py's chat stack; CPU 14.0 -> 13.2 ms per run at the same wall time). A later
  gRPC may drop the older path: then this setting is ignored and the default stack is used.
"""

from __future__ import annotations

import os

DEFAULTS = {
    "GRPC_ENABLE_FORK_SUPPORT": "false",
    "GRPC_EXPERIMENTS": "-event_engine_client,-event_engine_callback_cq,-event_engine_for_all_other_endpoints",
}


def set_defaults() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
