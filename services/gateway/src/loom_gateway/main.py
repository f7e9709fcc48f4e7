"""Entry point: `loom-gateway` runs the service until SIGTERM."""

from __future__ import annotations

from loom_common import grpc_env

grpc_env.set_defaults()  # before anything imports grpc, which reads these once


def main() -> None:
    from loom_gateway.app import build

    build().run()


if __name__ == "__main__":
    main()
