"""Accounts, sessions, workspaces (tenants), members and invitations.

First-run setup creates the one initial admin and their workspace, and is refused once done
(a single-row table with a CHECK makes the race safe). Sessions are JWTs: a short access
token and a refresh token whose id is stored, so logout and rotation revoke it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from loom_common.ids import new_id
from loom_gateway.domain import security
from loom_gateway.domain.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from loom_gateway.domain.rbac import ASSIGNABLE_ROLES, Role
from loom_gateway.store.key_cache import KeyCache
from loom_gateway.store.login_throttle import LoginPolicy, LoginThrottle


@dataclass(frozen=True)
class Session:
    access_token: str
    refresh_token: str
    expires_at: int
    account_id: str

    def body(self) -> dict:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "token_type": "Bearer", "expires_at": self.expires_at, "account_id": self.account_id}


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise BadRequest("password must have at least 8 characters", field="password")


def _email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise BadRequest("email is not a valid address", field="email")
    return email


def workspace_body(row) -> dict:
    return {"id": row["id"], "name": row["name"], "created_at": int(row["created_at"].timestamp()),
            **({"role": row["role"]} if "role" in row else {})}


class Accounts:
    def __init__(self, pool: asyncpg.Pool, issuer: security.TokenIssuer, invitation_ttl_s: int,
                 login_policy: LoginPolicy = LoginPolicy(), key_cache: KeyCache | None = None):
        self.pool = pool
        self.key_cache = key_cache or KeyCache(None)  # a workspace's limits are in its keys' entries
        self.issuer = issuer
        self.invitation_ttl_s = invitation_ttl_s
        self.throttle = LoginThrottle(pool, login_policy)

    # ---- setup and sessions -----------------------------------------------------------

    async def setup_done(self) -> bool:
        return bool(await self.pool.fetchval("SELECT EXISTS (SELECT 1 FROM setup_state)"))

    async def setup(self, email: str, name: str, password: str, workspace_name: str) -> tuple[dict, dict]:
        email, _ = _email(email), _check_password(password)
        account_id, tenant_id = new_id(), new_id()
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute("INSERT INTO setup_state (id, admin_id) VALUES (1, $1)", account_id)
            except asyncpg.UniqueViolationError as exc:
                raise Forbidden("Setup has already been completed.", code="already_setup") from exc
            await conn.execute("INSERT INTO accounts (id, email, name, password_hash, is_admin)"
                               " VALUES ($1, $2, $3, $4, true)", account_id, email, name,
                               security.hash_password(password))
            ws = await self._create_workspace(conn, tenant_id, workspace_name, account_id)
        return {"id": account_id, "email": email, "name": name}, ws

    async def login(self, email: str, password: str, ip: str | None = None) -> Session:
        """A session for the right password; failures are throttled per e-mail and per address
        (login_throttle.py), and an unknown e-mail costs one argon2 verification like a known one."""
        email = _email(email)
        async with self.throttle.attempt(email, ip):
            row = await self.pool.fetchrow("SELECT id, password_hash FROM accounts WHERE email = $1", email)
            if not security.verify_password(row["password_hash"] if row else None, password):
                raise Unauthorized("Invalid email or password.", code="invalid_credentials")
        await self.pool.execute("UPDATE accounts SET last_login_at = now() WHERE id = $1", row["id"])
        return await self._session(row["id"])

    async def _session(self, account_id: str) -> Session:
        refresh_id = new_id()
        refresh, refresh_exp = self.issuer.issue(account_id, "refresh", refresh_id)
        await self.pool.execute("INSERT INTO refresh_tokens (id, account_id, expires_at) VALUES ($1, $2, $3)",
                                refresh_id, account_id, datetime.fromtimestamp(refresh_exp, UTC))
        access, exp = self.issuer.issue(account_id, "access", refresh_id)
        return Session(access, refresh, exp, account_id)

    async def refresh(self, refresh_token: str) -> Session:
        claims = self.issuer.verify(refresh_token, "refresh")
        revoked = await self.pool.fetchval(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id",
            claims.token_id)
        if revoked is None:  # reused or logged out: refuse (rotation)
            raise Unauthorized("Refresh token is no longer valid.")
        return await self._session(claims.account_id)

    async def logout(self, token_id: str) -> None:
        await self.pool.execute("UPDATE refresh_tokens SET revoked_at = now() WHERE id = $1", token_id)

    async def authenticate(self, access_token: str) -> tuple[str, str]:
        """An access token -> (account id, session id); a logged-out session is refused."""
        claims = self.issuer.verify(access_token, "access")
        live = await self.pool.fetchval("SELECT revoked_at IS NULL FROM refresh_tokens WHERE id = $1",
                                        claims.token_id)
        if not live:
            raise Unauthorized("Session has ended.")
        return claims.account_id, claims.token_id

    async def profile(self, account_id: str) -> dict:
        row = await self.pool.fetchrow("SELECT id, email, name, is_admin, created_at FROM accounts WHERE id = $1",
                                       account_id)
        if row is None:
            raise Unauthorized("Account no longer exists.")
        return {"id": row["id"], "email": row["email"], "name": row["name"], "is_admin": row["is_admin"],
                "created_at": int(row["created_at"].timestamp()), "workspaces": await self.workspaces(account_id)}

    # ---- workspaces ---------------------------------------------------------------------

    async def _create_workspace(self, conn, tenant_id: str, name: str, owner_id: str) -> dict:
        if not name.strip():
            raise BadRequest("name must not be empty", field="name")
        row = await conn.fetchrow("INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
                                  tenant_id, name.strip())
        await conn.execute("INSERT INTO members (tenant_id, account_id, role) VALUES ($1, $2, 'owner')",
                           tenant_id, owner_id)
        return {**workspace_body(row), "role": "owner"}

    async def create_workspace(self, account_id: str, name: str) -> dict:
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._create_workspace(conn, new_id(), name, account_id)

    async def workspaces(self, account_id: str) -> list[dict]:
        rows = await self.pool.fetch("SELECT t.id, t.name, t.created_at, m.role FROM members m JOIN tenants t"
                                     " ON t.id = m.tenant_id WHERE m.account_id = $1 ORDER BY t.created_at",
                                     account_id)
        return [workspace_body(r) for r in rows]

    async def role_in(self, account_id: str, tenant_id: str) -> Role | None:
        role = await self.pool.fetchval("SELECT role FROM members WHERE tenant_id = $1 AND account_id = $2",
                                        tenant_id, account_id)
        return Role(role) if role else None

    async def workspace(self, tenant_id: str) -> dict:
        row = await self.pool.fetchrow("SELECT id, name, created_at, rpm_limit, tokens_per_day,"
                                       " audit_retention_days FROM tenants WHERE id = $1", tenant_id)
        if row is None:
            raise NotFound("Workspace not found.", code="workspace_not_exists")
        return {**workspace_body(row), "rpm_limit": row["rpm_limit"], "tokens_per_day": row["tokens_per_day"],
                "audit_retention_days": row["audit_retention_days"]}

    async def update_workspace(self, tenant_id: str, *, name: str | None, rpm_limit: int | None,
                               tokens_per_day: int | None) -> dict:
        if name is not None and not name.strip():
            raise BadRequest("name must not be empty", field="name")
        await self.pool.execute(
            "UPDATE tenants SET name = COALESCE($2, name), rpm_limit = COALESCE($3, rpm_limit),"
            " tokens_per_day = COALESCE($4, tokens_per_day) WHERE id = $1",
            tenant_id, name.strip() if name else None, rpm_limit, tokens_per_day)
        if rpm_limit is not None or tokens_per_day is not None:
            await self.key_cache.forget(await self.key_cache.digests(self.pool, tenant_id=tenant_id))
        return await self.workspace(tenant_id)

    async def delete_workspace(self, tenant_id: str) -> None:
        keys = await self.key_cache.digests(self.pool, tenant_id=tenant_id)
        await self.pool.execute("DELETE FROM tenants WHERE id = $1", tenant_id)
        await self.key_cache.forget(keys)

    # ---- members and invitations ---------------------------------------------------------

    async def members(self, tenant_id: str) -> list[dict]:
        rows = await self.pool.fetch("SELECT a.id, a.email, a.name, m.role, m.created_at FROM members m"
                                     " JOIN accounts a ON a.id = m.account_id WHERE m.tenant_id = $1"
                                     " ORDER BY m.created_at", tenant_id)
        return [{"id": r["id"], "email": r["email"], "name": r["name"], "role": r["role"],
                 "created_at": int(r["created_at"].timestamp())} for r in rows]

    async def set_role(self, tenant_id: str, actor_role: Role, account_id: str, role: str) -> None:
        new_role = _assignable(role)
        current = await self.role_in(account_id, tenant_id)
        if current is None:
            raise NotFound("Member not found.", code="member_not_exists")
        if current == Role.OWNER:
            raise Forbidden("The owner's role cannot be changed.")
        if current == Role.ADMIN and actor_role != Role.OWNER:
            raise Forbidden("Only the owner may change an admin's role.")
        await self.pool.execute("UPDATE members SET role = $3 WHERE tenant_id = $1 AND account_id = $2",
                                tenant_id, account_id, new_role.value)

    async def remove_member(self, tenant_id: str, actor_role: Role, account_id: str) -> None:
        current = await self.role_in(account_id, tenant_id)
        if current is None:
            raise NotFound("Member not found.", code="member_not_exists")
        if current == Role.OWNER or (current == Role.ADMIN and actor_role != Role.OWNER):
            raise Forbidden("This member cannot be removed by you.")
        await self.pool.execute("DELETE FROM members WHERE tenant_id = $1 AND account_id = $2", tenant_id, account_id)

    async def invite(self, tenant_id: str, inviter_id: str, email: str, role: str) -> dict:
        email, new_role = _email(email), _assignable(role)
        token = security.new_secret("inv-")
        inv_id = new_id()
        expires = datetime.now(UTC) + timedelta(seconds=self.invitation_ttl_s)
        await self.pool.execute("INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by,"
                                " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)", inv_id, tenant_id, email,
                                new_role.value, security.digest(token), inviter_id, expires)
        return {"id": inv_id, "email": email, "role": new_role.value, "token": token,
                "expires_at": int(expires.timestamp())}

    async def invitations(self, tenant_id: str) -> list[dict]:
        rows = await self.pool.fetch("SELECT id, email, role, created_at, expires_at, accepted_at FROM invitations"
                                     " WHERE tenant_id = $1 ORDER BY created_at DESC", tenant_id)
        return [{"id": r["id"], "email": r["email"], "role": r["role"],
                 "created_at": int(r["created_at"].timestamp()), "expires_at": int(r["expires_at"].timestamp()),
                 "accepted": r["accepted_at"] is not None} for r in rows]

    async def accept(self, token: str, name: str | None, password: str) -> tuple[Session, str]:
        """Join the inviting workspace; creates the account when the email has none yet."""
        async with self.pool.acquire() as conn, conn.transaction():
            inv = await conn.fetchrow("SELECT id, tenant_id, email, role FROM invitations WHERE token_hash = $1"
                                      " AND accepted_at IS NULL AND expires_at > now() FOR UPDATE",
                                      security.digest(token))
            if inv is None:
                raise BadRequest("Invitation is invalid or has expired.", field="token")
            account = await conn.fetchrow("SELECT id, password_hash FROM accounts WHERE email = $1", inv["email"])
            if account is None:
                _check_password(password)
                if not (name or "").strip():
                    raise BadRequest("name is required for a new account", field="name")
                account_id = new_id()
                await conn.execute("INSERT INTO accounts (id, email, name, password_hash) VALUES ($1, $2, $3, $4)",
                                   account_id, inv["email"], name.strip(), security.hash_password(password))
            elif not security.verify_password(account["password_hash"], password):
                raise Unauthorized("Invalid email or password.", code="invalid_credentials")
            else:
                account_id = account["id"]
            try:
                await conn.execute("INSERT INTO members (tenant_id, account_id, role) VALUES ($1, $2, $3)",
                                   inv["tenant_id"], account_id, inv["role"])
            except asyncpg.UniqueViolationError as exc:
                raise Conflict("Already a member of this workspace.") from exc
            await conn.execute("UPDATE invitations SET accepted_at = now() WHERE id = $1", inv["id"])
        return await self._session(account_id), inv["tenant_id"]


def _assignable(role: str) -> Role:
    try:
        value = Role(role)
    except ValueError:
        value = None
    if value not in ASSIGNABLE_ROLES:
        raise BadRequest(f"role must be one of {[r.value for r in ASSIGNABLE_ROLES]}", field="role")
    return value
