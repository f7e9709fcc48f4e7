"""The gRPC server side of service identity: every call must carry a valid service token
(`service_auth`), and the tenant a call acts for is the token's, never the body's alone.

    no token, forged, expired      -> UNAUTHENTICATED (the request is not even parsed)
    body tenant_id != token tenant -> PERMISSION_DENIED
    loom-tenant-id != token tenant -> PERMISSION_DENIED (the header servers log and read)

A request message with a top-level `tenant_id` field (every rag and tools request) is compared
with the token's tenant before the servicer runs; an empty body tenant is left to the servicer
(which refuses it as a missing field).
"""

from __future__ import annotations

import contextlib
import inspect

import grpc

from loom_common.service_auth import InvalidServiceToken, ServiceAuth
from loom_common.telemetry import TENANT_HEADER

TOKEN_METADATA = "authorization"


def bearer(token: str) -> tuple[str, str]:
    return TOKEN_METADATA, f"Bearer {token}"


class ServiceTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, auth: ServiceAuth) -> None:
        self.auth = auth

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        metadata = dict(handler_call_details.invocation_metadata or ())
        raw = str(metadata.get(TOKEN_METADATA, ""))
        try:
            claims = self.auth.verify(raw.removeprefix("Bearer ").strip() or None)
        except InvalidServiceToken as exc:
            return _refusing(handler, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        header_tenant = metadata.get(TENANT_HEADER)
        if header_tenant and header_tenant != claims.tenant:
            return _refusing(handler, grpc.StatusCode.PERMISSION_DENIED,
                             "the tenant in the metadata is not the service token's")
        return _checking_tenant(handler, claims.tenant)


def _refusing(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    async def refuse(_request, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    # No request deserializer: an unauthenticated caller's bytes are never parsed.
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, None, handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse, None, handler.response_serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, None, handler.response_serializer)
    return grpc.stream_stream_rpc_method_handler(refuse, None, handler.response_serializer)


async def _check_body(request, context: grpc.aio.ServicerContext, tenant: str) -> None:
    body = getattr(request, "tenant_id", "")
    if body and body != tenant:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                            "tenant_id: not the tenant this service token acts for")


def _checking_tenant(handler: grpc.RpcMethodHandler, tenant: str) -> grpc.RpcMethodHandler:
    if handler.unary_unary:
        behavior = handler.unary_unary

        async def unary(request, context):
            await _check_body(request, context, tenant)
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        stream = handler.unary_stream
        if inspect.isasyncgenfunction(stream):
            async def streaming(request, context):
                await _check_body(request, context, tenant)
                # aclosing: a stopped stream closes the servicer's generator now (its finally
                # aborts the model's sequence), not when it is garbage-collected.
                async with contextlib.aclosing(stream(request, context)) as items:
                    async for item in items:
                        yield item
        else:  # a coroutine that writes with context.write
            async def streaming(request, context):
                await _check_body(request, context, tenant)
                return await stream(request, context)

        return grpc.unary_stream_rpc_method_handler(streaming, handler.request_deserializer,
                                                    handler.response_serializer)
    return handler  # client-streaming calls: Loom has none; the token alone was checked
