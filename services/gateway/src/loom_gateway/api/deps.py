"""Authentication and authorisation for every route.

`require(perm)` is the one gate: it resolves the caller (console JWT in a workspace, app key,
dataset key) into a `Principal`, checks `rbac.allowed(principal.role, perm)`, applies rate
limits to API keys, and after a successful console mutation appends it to the audit log.
The permission is kept on the dependency (`__perm__`), so tests can list every route's gate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from loom_gateway.api import timing
from loom_gateway.api.context import Gateway
from loom_gateway.domain import security
from loom_gateway.domain.errors import Forbidden, NotFound, Unauthorized
from loom_gateway.domain.rbac import Perm, Principal, Role, allowed

bearer = HTTPBearer(auto_error=False, description="Console access token (JWT), app key `app-…` or dataset key "
                                                  "`dataset-…`")
WORKSPACE_HEADER = "x-workspace-id"


def gw(request: Request) -> Gateway:
    return request.app.state.gw


def _token(creds: HTTPAuthorizationCredentials | None) -> str:
    if creds is None or not creds.credentials:
        raise Unauthorized("Authorization header must be provided and start with 'Bearer'")
    return creds.credentials


async def current_account(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
    """A console account (no workspace needed): its id."""
    token = _token(creds)
    if token.startswith((security.APP_KEY_PREFIX, security.DATASET_KEY_PREFIX)):
        raise Forbidden("API keys cannot use the console API.")
    account_id, session_id = await gw(request).accounts.authenticate(token)
    request.state.session_id = session_id
    return account_id


async def resolve(request: Request, token: str) -> Principal:
    g = gw(request)
    if token.startswith((security.APP_KEY_PREFIX, security.DATASET_KEY_PREFIX)):
        named = request.path_params.get("workspace_id") or request.headers.get(WORKSPACE_HEADER)
        principal = await g.limits.admit_key(token, named or None)
        await g.audit.key_used(principal, request.url.path, request.client.host if request.client else None)
        return principal
    account_id, session_id = await g.accounts.authenticate(token)
    request.state.session_id = session_id
    tenant_id = request.path_params.get("workspace_id") or request.headers.get(WORKSPACE_HEADER)
    if not tenant_id:
        raise Forbidden("Console tokens must name a workspace (path or X-Workspace-Id header).")
    role = await g.accounts.role_in(account_id, tenant_id)
    if role is None:
        raise NotFound("Workspace not found.", code="workspace_not_exists")
    return Principal(kind="account", tenant_id=tenant_id, role=Role(role), account_id=account_id)


def require(perm: Perm):
    async def gate(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)
                   ) -> AsyncIterator[Principal]:
        principal = await resolve(request, _token(creds))
        if not allowed(principal.role, perm):
            raise Forbidden(f"Role '{principal.role.value}' lacks permission '{perm.value}'.")
        request.state.principal = principal
        timing.mark(request, "auth")
        if request.method in ("GET", "HEAD", "OPTIONS"):
            yield principal
        else:  # a write: its workspace's and app's reads go to the primary until the replica has it
            reads = gw(request).reads
            with reads.writing(principal.tenant_id), reads.writing(principal.app_id or principal.tenant_id):
                yield principal
        if principal.kind == "account" and request.method not in ("GET", "HEAD", "OPTIONS"):
            route = request.scope.get("route")
            target = next(iter(reversed(list(request.path_params.values()))), None)
            # A route may add to the entry (request.state.audit_detail), e.g. what a stream did.
            detail = {"method": request.method, "path": request.url.path,
                      **getattr(request.state, "audit_detail", {})}
            await gw(request).audit.record(principal, getattr(route, "name", request.url.path),
                                           target_id=target, detail=detail,
                                           ip=request.client.host if request.client else None)

    gate.__perm__ = perm
    return Depends(gate)
