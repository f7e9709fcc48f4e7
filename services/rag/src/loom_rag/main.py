"""Entry point: `loom-rag` runs the service until SIGTERM."""

from __future__ import annotations

import os

# rag forks a child per uploaded file (loom_common.bounded, under uvloop, whose spawn is a plain
# fork()). With gRPC's fork support on, its fork handlers run in that child while other threads
# are inside gRPC calls (embedding a document, a retrieval) and the child can die of SIGSEGV
# before it execs: the document failed as "needed more than 1024 MiB of memory (or crashed)"
# when two files were uploaded at once. rag never uses gRPC in a forked child, so it is off.
# Read when gRPC initialises: set before anything imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


def main() -> None:
    from loom_rag.app import build

    build().run()


if __name__ == "__main__":
    main()
