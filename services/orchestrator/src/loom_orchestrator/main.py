"""Entry point: `loom-orchestrator` runs the service until SIGTERM."""

from __future__ import annotations

import os

# The document-extractor node forks a bounded parser child (loom_common.bounded) under uvloop
# beside live gRPC calls; gRPC's fork handlers can then crash the child before it execs (measured
# in rag, see loom_rag/main.py). No gRPC is used in a forked child. Set before grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


def main() -> None:
    from loom_orchestrator.app import build

    build().run()


if __name__ == "__main__":
    main()
