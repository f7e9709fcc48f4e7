"""`loom_common.bounded`: a target runs in a limited child; its errors, its memory bomb and an
oversized result come back as typed BoundedFailures (rag's hostile-file tests cover CPU)."""

from __future__ import annotations

import zlib

import pytest

from loom_common.bounded import BoundedFailure, BoundedTooLarge, Bounds, call_bounded


async def test_bounded_returns_the_targets_text() -> None:
    assert await call_bounded("json:loads", b'"hello"') == "hello"


async def test_bounded_maps_a_target_error_to_a_clear_failure() -> None:
    with pytest.raises(BoundedFailure, match="JSONDecodeError"):
        await call_bounded("json:loads", b"{broken")


async def test_bounded_memory_bomb_dies_in_the_child() -> None:
    bomb = zlib.compress(b"\0" * (400 * 2**20), 9)  # ~400 KB that inflates to 400 MiB
    with pytest.raises(BoundedTooLarge, match="150 MiB"):
        await call_bounded("zlib:decompress", bomb, bounds=Bounds(memory_mb=150))


async def test_bounded_caps_the_result() -> None:
    with pytest.raises(BoundedTooLarge, match="larger than 1000 bytes"):
        await call_bounded("json:loads", b'"' + b"x" * 100_000 + b'"', bounds=Bounds(max_output_bytes=1000))
