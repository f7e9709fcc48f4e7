"""Every failure answers in Dify's shape `{code, message, status}`; validation names the field."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from loom_common.logging import get_logger
from loom_gateway.domain.errors import ApiError

log = get_logger(__name__)

_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               413: "request_too_large", 415: "unsupported_media_type"}


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or str(loc[-1] if loc else "body")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        retry_after = getattr(exc, "retry_after_s", None)  # RateLimited (429), Overloaded (503)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        field = _field(tuple(first.get("loc", ())))
        return JSONResponse({"code": "invalid_param", "message": f"{field}: {first.get('msg')}", "status": 400,
                             "field": field}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"code": _HTTP_CODES.get(exc.status_code, "error"), "message": str(exc.detail),
                             "status": exc.status_code}, status_code=exc.status_code, headers=exc.headers)

    # Text Postgres cannot store (NUL characters, lone UTF-16 surrogates from JSON escapes) is
    # bad input, not a server fault: refuse it as such wherever it reaches the database.
    @app.exception_handler(asyncpg.DataError)
    @app.exception_handler(UnicodeError)
    async def bad_text(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"code": "invalid_param", "message": "the request holds characters that cannot be "
                             f"stored (NUL or lone surrogates): {type(exc).__name__}", "status": 400},
                            status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", path=request.url.path, error=repr(exc))
        return JSONResponse({"code": "internal_server_error", "message": "Internal Server Error", "status": 500},
                            status_code=500)
