"""Pieces both HTTP APIs share: error mapping, priming a stream, option mapping helpers.

A stream is primed (its first delta awaited) before the HTTP status is sent, so an unknown
model or a too-long prompt is a 404/400 with a JSON body, never a 200 that breaks mid-way.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from loom_inference.engine.types import (
    MAX_TOP_LOGPROBS,
    BackendError,
    Delta,
    InferenceError,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    SamplingParams,
    TokenLogprob,
)


def http_status(exc: InferenceError) -> int:
    if isinstance(exc, ModelNotFound):
        return 404
    if isinstance(exc, InvalidRequest):
        return 400
    if isinstance(exc, Overloaded):
        return 429
    if isinstance(exc, BackendError):
        return 502
    return 500


def error_body(request: Request, status: int, message: str, field: str | None = None) -> JSONResponse:
    if request.url.path.startswith("/v1/"):  # OpenAI's error shape
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": field,
                                       "code": "model_not_found" if status == 404 else None}}, status_code=status)
    body = {"error": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


async def on_inference_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InferenceError)
    return error_body(request, http_status(exc), str(exc), getattr(exc, "field", None))


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(loc) or None
    return error_body(request, 400, f"{field}: {first.get('msg', 'invalid request')}", field)


async def prime(stream: AsyncIterator[Delta]) -> tuple[Delta, AsyncIterator[Delta]]:
    """Await the first delta (raising the stream's early errors), then give the rest."""
    first = await stream.__anext__()

    async def rest() -> AsyncIterator[Delta]:
        try:
            yield first
            if not first.finished:
                async for d in stream:
                    yield d
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # client gone: abort the sequence now

    return first, rest()


def ns(ms: float) -> int:
    return int(ms * 1_000_000)


def schema_from_format(fmt, field: str) -> str:
    """Ollama `format` / OpenAI response_format -> JSON schema text ("" = free text)."""
    if fmt in (None, "", "text"):
        return ""
    if fmt == "json":
        return json.dumps({"type": "object"})
    if isinstance(fmt, dict):
        return json.dumps(fmt)
    raise InvalidRequest("must be 'json' or a JSON schema object", field)


def logprobs_wanted(enabled: bool | int | None, top: int | None, field: str = "top_logprobs") -> int | None:
    """A request's logprobs settings -> SamplingParams.logprobs (None: off; N: N alternatives)."""
    if top is not None and not 0 <= top <= MAX_TOP_LOGPROBS:
        raise InvalidRequest(f"must be between 0 and {MAX_TOP_LOGPROBS}", field)
    if enabled is None or enabled is False:
        if top:
            raise InvalidRequest("needs logprobs to be true", field)
        return None
    if enabled is True:
        return top or 0
    if not 0 <= enabled <= MAX_TOP_LOGPROBS:  # the completions API's logprobs=N
        raise InvalidRequest(f"must be between 0 and {MAX_TOP_LOGPROBS}", "logprobs")
    return enabled


def token_logprobs(lps: list[TokenLogprob]) -> list[dict]:
    """OpenAI's chat `logprobs.content` items (Ollama's `logprobs` take the same shape)."""
    return [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes,
             "top_logprobs": [{"token": a.token, "logprob": a.logprob, "bytes": a.bytes} for a in t.top]}
            for t in lps]


def check_sampling(s: SamplingParams, prefix: str = "") -> None:
    """Values llama.cpp's samplers cannot take are a 400 naming the option, not a surprise."""
    if s.mirostat not in (0, 1, 2):
        raise InvalidRequest("must be 0 (off), 1 or 2", f"{prefix}mirostat")
    if not 0.0 <= s.min_p <= 1.0:
        raise InvalidRequest("must be between 0 and 1", f"{prefix}min_p")
    if s.repeat_last_n < -1:
        raise InvalidRequest("must be -1 (the whole context), 0 (off) or a number of tokens", f"{prefix}repeat_last_n")
    for name in ("presence_penalty", "frequency_penalty"):
        if not -2.0 <= getattr(s, name) <= 2.0:
            raise InvalidRequest("must be between -2 and 2", f"{prefix}{name}")
