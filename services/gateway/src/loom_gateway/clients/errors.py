"""gRPC status -> the gateway's API errors (one translation for every client)."""

from __future__ import annotations

import grpc

from loom_gateway.domain.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, RateLimited, Upstream


def translate(exc: grpc.aio.AioRpcError, service: str) -> ApiError:
    code, detail = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        field = detail.split(":", 1)[0].strip() if ":" in detail else None
        return BadRequest(detail, field=field if field and " " not in field else None)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(detail or "Not found.")
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return Conflict(detail, code="dataset_name_duplicate" if service == "rag" else "conflict")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return BadRequest(detail, code="failed_precondition")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return Forbidden(detail)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return RateLimited(detail or "The model is busy; try again later.", retry_after_s=1)  # an engine's full queue
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Upstream(f"{service} timed out", code="gateway_timeout", status=504)
    if code == grpc.StatusCode.UNAVAILABLE:
        return Upstream(f"{service} is unavailable: {detail}")
    return Upstream(f"{service} failed: {code.name} {detail}", status=502, code="bad_gateway")
