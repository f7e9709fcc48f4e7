"""Text Postgres cannot store (a NUL from a query string) is the caller's bad input: the RPC
answers INVALID_ARGUMENT, never INTERNAL (the gateway's schema fuzz once got a 502 for a
`keyword` holding a NUL)."""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg
import grpc
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_rag_pipeline as pipeline  # its in-process harness, beside this file

from loom_rag.api.errors import guarded

rag, tenant = pipeline.rag, pipeline.tenant  # the fixture and its helper

pytestmark = pytest.mark.integration


class _Aborted(Exception):
    pass


class _Context:
    code: grpc.StatusCode | None = None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise _Aborted(details)


async def test_a_nul_in_a_keyword_is_invalid_argument(rag) -> None:
    ctx = _Context()
    with pytest.raises(_Aborted):
        await guarded(ctx, rag.m.list_datasets(tenant(), keyword="a\x00b"))
    assert ctx.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_any_text_postgres_refuses_maps_the_same_way() -> None:
    async def refuse():
        raise asyncpg.UntranslatableCharacterError("unsupported Unicode escape sequence")

    ctx = _Context()
    with pytest.raises(_Aborted):
        await guarded(ctx, refuse())
    assert ctx.code == grpc.StatusCode.INVALID_ARGUMENT
