"""Entry point: `loom-inference` runs the service until SIGTERM."""

from __future__ import annotations

import sys

from loom_common import grpc_env

grpc_env.set_defaults()  # before anything imports grpc, which reads these once


def main() -> None:
    from loom_inference.api.access import BindRefused
    from loom_inference.app import build

    try:
        runtime = build()
    except BindRefused as exc:
        sys.exit(f"loom-inference: {exc}")
    runtime.run()


if __name__ == "__main__":
    main()
