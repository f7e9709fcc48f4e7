"""Entry point: `loom-rag` runs the service until SIGTERM."""

from __future__ import annotations


def main() -> None:
    from loom_rag.app import build

    build().run()


if __name__ == "__main__":
    main()
