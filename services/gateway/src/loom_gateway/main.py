"""Entry point: `loom-gateway` runs the service until SIGTERM."""

from __future__ import annotations


def main() -> None:
    from loom_gateway.app import build

    build().run()


if __name__ == "__main__":
    main()
