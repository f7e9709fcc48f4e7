"""Entry point: `loom-orchestrator` runs the service until SIGTERM."""

from __future__ import annotations

import os

# The document-extractor node forks a bounded parser child (loom_common.bounded) under uvloop
# beside live gRPC calls; gRPC's fork handlers can then crash the child before it execs (measured
# in rag, see loom_rag/main.py). No gRPC is used in a forked child. Set before grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
# gRPC 1.85's EventEngine client stack does a stream's I/O on threads of its own (`event_engine`:
# 14 % of this process's CPU under perf), so a model's every token crosses threads before it
# reaches the loop. Its older I/O path (still shipped) halves this process's context switches
# per chat run (113 -> 59 on bench/gateway.py's chat stack; CPU 14.0 -> 13.2 ms per run at the
# same wall time). A deployment may set its own GRPC_EXPERIMENTS.
os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_client,-event_engine_callback_cq,"
                                          "-event_engine_for_all_other_endpoints")


def main() -> None:
    from loom_orchestrator.app import build

    build().run()


if __name__ == "__main__":
    main()
