"""Apps of a workspace: CRUD, the draft DSL and its published versions, import/export, and
the API keys that call them (app keys) or a workspace's datasets (dataset keys).

Every query filters on tenant_id: an id from another workspace is simply "not found".
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import asyncpg

from loom_common.dsl.flow_nodes import InputVariable
from loom_common.ids import new_id
from loom_gateway.domain import app_secrets, dsl, security
from loom_gateway.domain.errors import BadRequest, NotFound
from loom_gateway.domain.published_cache import PublishedCache
from loom_gateway.domain.sealing import Sealer
from loom_gateway.store.key_cache import KeyCache


@dataclass(frozen=True)
class PublishedApp:
    id: str
    tenant_id: str
    mode: str
    name: str
    version: int | None  # None: the draft (the console's debugger runs)
    dsl: dict[str, Any]

    @cached_property
    def form(self) -> list[InputVariable]:
        """The start node's variables, parsed once: a published version never changes."""
        return dsl.start_variables(self.dsl)


# Loom's app modes as Dify's service API names them (`mode` of /v1/info and of a chat answer).
_DIFY_MODES = {"chatflow": "advanced-chat", "agent": "agent-chat"}


def dify_mode(mode: str) -> str:
    return _DIFY_MODES.get(mode, mode)


def app_body(row) -> dict:
    return {"id": row["id"], "name": row["name"], "mode": row["mode"], "description": row["description"],
            "icon": row["icon"], "published_version": row["published_version"],
            "created_at": int(row["created_at"].timestamp()), "updated_at": int(row["updated_at"].timestamp())}


_APP_COLS = "id, name, mode, description, icon, published_version, created_at, updated_at"


class Apps:
    # Published versions never change (a new publish is a new version), so this replica keeps
    # the last few it ran, parsed: a run start whose key named the version skips the query.
    PUBLISHED_CACHE = 256

    def __init__(self, pool: asyncpg.Pool, default_chat_model: str, sealer: Sealer, key_cache: KeyCache | None = None,
                 published_cache: PublishedCache | None = None):
        self.pool = pool
        # Cached key admissions (Redis): what a publish, a delete or a key change makes stale.
        self.key_cache = key_cache or KeyCache(None)
        # Published versions in Redis for replicas that have not run them yet (then in memory).
        self.published_cache = published_cache or PublishedCache(None)
        self.default_chat_model = default_chat_model
        self.sealer = sealer  # secret environment variables (app_secrets.py)
        self._published: OrderedDict[tuple[str, str, int], PublishedApp] = OrderedDict()

    async def create(self, tenant_id: str, account_id: str | None, name: str, mode: str,
                     description: str = "", icon: str = "", doc: dict | None = None,
                     chat_model: str | None = None) -> dict:
        """A new app: `doc` (imported), else the mode's default graph with `chat_model` (the
        workspace's default chat model; the service's when None)."""
        if mode not in dsl.MODES:
            raise BadRequest(f"mode must be one of {list(dsl.MODES)}", field="mode")
        if not name.strip():
            raise BadRequest("name must not be empty", field="name")
        doc = dsl.validate(doc) if doc is not None else dsl.default_dsl(mode, name,
                                                                        chat_model or self.default_chat_model)
        row = await self.pool.fetchrow(
            f"INSERT INTO apps (id, tenant_id, name, mode, description, icon, draft, created_by)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8) RETURNING {_APP_COLS}",
            new_id(), tenant_id, name.strip(), mode, description, icon,
            json.dumps(app_secrets.seal(doc, self.sealer)), account_id)
        return app_body(row)

    async def list(self, tenant_id: str, page: int, limit: int, mode: str | None = None) -> dict:
        rows = await self.pool.fetch(
            f"SELECT {_APP_COLS}, count(*) OVER () AS total FROM apps WHERE tenant_id = $1"
            " AND ($2::text IS NULL OR mode = $2) ORDER BY created_at DESC OFFSET $3 LIMIT $4",
            tenant_id, mode, (page - 1) * limit, limit)
        total = rows[0]["total"] if rows else 0
        return {"data": [app_body(r) for r in rows], "page": page, "limit": limit, "total": total,
                "has_more": page * limit < total}

    async def get(self, tenant_id: str, app_id: str) -> dict:
        row = await self.pool.fetchrow(f"SELECT {_APP_COLS} FROM apps WHERE tenant_id = $1 AND id = $2",
                                       tenant_id, app_id)
        if row is None:
            raise NotFound("App not found.", code="app_not_exists")
        return app_body(row)

    async def update(self, tenant_id: str, app_id: str, *, name: str | None, description: str | None,
                     icon: str | None) -> dict:
        if name is not None and not name.strip():
            raise BadRequest("name must not be empty", field="name")
        row = await self.pool.fetchrow(
            f"UPDATE apps SET name = COALESCE($3, name), description = COALESCE($4, description),"
            f" icon = COALESCE($5, icon), updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING {_APP_COLS}",
            tenant_id, app_id, name.strip() if name else None, description, icon)
        if row is None:
            raise NotFound("App not found.", code="app_not_exists")
        return app_body(row)

    async def delete(self, tenant_id: str, app_id: str) -> None:
        keys = await self.key_cache.digests(self.pool, app_id=app_id)  # its keys go with it
        if await self.pool.execute("DELETE FROM apps WHERE tenant_id = $1 AND id = $2", tenant_id, app_id) \
                == "DELETE 0":
            raise NotFound("App not found.", code="app_not_exists")
        await self.key_cache.forget(keys)

    # ---- DSL: draft, publish, versions, import/export ---------------------------------------

    async def _stored_draft(self, conn, tenant_id: str, app_id: str, *, lock: bool = False) -> dict:
        raw = await conn.fetchval("SELECT draft FROM apps WHERE tenant_id = $1 AND id = $2"
                                  + (" FOR UPDATE" if lock else ""), tenant_id, app_id)
        if raw is None:
            raise NotFound("App not found.", code="app_not_exists")
        return json.loads(raw)

    async def draft(self, tenant_id: str, app_id: str) -> dict:
        """The draft as any reader sees it: secret values masked."""
        return app_secrets.mask(await self._stored_draft(self.pool, tenant_id, app_id))

    async def draft_for_run(self, tenant_id: str, app_id: str) -> dict:
        """The draft a debug run gets: secret values opened. Never returned to a client."""
        return app_secrets.reveal(await self._stored_draft(self.pool, tenant_id, app_id), self.sealer)

    async def save_draft(self, tenant_id: str, app_id: str, doc: Any) -> dict:
        app = await self.get(tenant_id, app_id)
        doc = dsl.validate(doc)
        if doc["app"]["mode"] != app["mode"]:
            raise BadRequest(f"app.mode must stay {app['mode']!r}", field="dsl.app.mode")
        async with self.pool.acquire() as conn, conn.transaction():  # a masked secret keeps the stored one
            stored = await self._stored_draft(conn, tenant_id, app_id, lock=True)
            sealed = app_secrets.seal(doc, self.sealer, stored)
            await conn.execute("UPDATE apps SET draft = $3::jsonb, updated_at = now() WHERE tenant_id = $1"
                               " AND id = $2", tenant_id, app_id, json.dumps(sealed))
        return app_secrets.mask(sealed)

    async def seal_stored_secrets(self) -> int:
        """Seal secret values that drafts and versions stored in plain text before sealing
        existed (run at start; idempotent, and a row changed meanwhile is left to its writer)."""
        sealed_rows = 0
        async with self.pool.acquire() as conn:
            for table, col, key in (("apps", "draft", "id::text"), ("app_versions", "dsl", "app_id || ':' || version")):
                rows = await conn.fetch(f"SELECT {key} AS k, {col}::text AS doc FROM {table}"
                                        f" WHERE {col}::text LIKE '%\"value_type\": \"secret\"%'")
                for r in rows:
                    doc = json.loads(r["doc"])
                    sealed = app_secrets.seal(doc, self.sealer)
                    if sealed != doc:
                        status = await conn.execute(f"UPDATE {table} SET {col} = $2::jsonb WHERE {key} = $1"
                                                    f" AND {col} = $3::jsonb", r["k"], json.dumps(sealed), r["doc"])
                        sealed_rows += status != "UPDATE 0"
        return sealed_rows

    async def publish(self, tenant_id: str, app_id: str, account_id: str | None) -> dict:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT draft FROM apps WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
                                      tenant_id, app_id)
            if row is None:
                raise NotFound("App not found.", code="app_not_exists")
            version = await conn.fetchval("SELECT COALESCE(max(version), 0) + 1 FROM app_versions"
                                          " WHERE app_id = $1", app_id)
            await conn.execute("INSERT INTO app_versions (app_id, tenant_id, version, dsl, published_by)"
                               " VALUES ($1, $2, $3, $4, $5)", app_id, tenant_id, version, row["draft"], account_id)
            await conn.execute("UPDATE apps SET published_version = $3, updated_at = now() WHERE tenant_id = $1"
                               " AND id = $2", tenant_id, app_id, version)
        # The app's keys admit to the new version from their next request on, on every replica.
        await self.key_cache.forget(await self.key_cache.digests(self.pool, app_id=app_id))
        return {"version": version}

    async def versions(self, tenant_id: str, app_id: str) -> list[dict]:
        await self.get(tenant_id, app_id)
        rows = await self.pool.fetch("SELECT version, published_by, published_at FROM app_versions"
                                     " WHERE tenant_id = $1 AND app_id = $2 ORDER BY version DESC", tenant_id, app_id)
        return [{"version": r["version"], "published_by": r["published_by"],
                 "published_at": int(r["published_at"].timestamp())} for r in rows]

    async def version_dsl(self, tenant_id: str, app_id: str, version: str) -> dict:
        if version == "draft":
            return await self.draft(tenant_id, app_id)
        if version == "published":
            number = (await self.get(tenant_id, app_id))["published_version"]
            if number is None:
                raise NotFound("App has no published version.", code="app_unpublished")
        else:
            try:
                number = int(version)
            except ValueError as exc:
                raise BadRequest("version must be 'draft', 'published' or a number", field="version") from exc
        raw = await self.pool.fetchval("SELECT dsl FROM app_versions WHERE tenant_id = $1 AND app_id = $2"
                                       " AND version = $3", tenant_id, app_id, number)
        if raw is None:
            raise NotFound("Version not found.", code="version_not_exists")
        return app_secrets.mask(json.loads(raw))

    async def import_dsl(self, tenant_id: str, account_id: str | None, text: str, name: str | None) -> dict:
        doc = await asyncio.to_thread(dsl.parse_yaml, text)  # up to MAX_DSL_CHARS of YAML: off the loop
        meta = doc["app"]
        return await self.create(tenant_id, account_id, name or meta["name"], meta["mode"],
                                 meta.get("description") or "", meta.get("icon") or "", doc)

    async def published(self, tenant_id: str, app_id: str, version: int | None = None) -> PublishedApp:
        """The app as published; `version` (when the caller knows it) may be answered from memory."""
        cached = self._published.get((tenant_id, app_id, version)) if version is not None else None
        if cached is not None:
            self._published.move_to_end((tenant_id, app_id, version))
            return cached
        if version is not None and (shared := await self.published_cache.get(tenant_id, app_id, version)):
            return self._opened(tenant_id, app_id, shared)
        row = await self.pool.fetchrow(
            "SELECT a.id, a.tenant_id, a.mode, a.name, v.version, v.dsl FROM apps a JOIN app_versions v"
            " ON v.app_id = a.id AND v.version = a.published_version WHERE a.tenant_id = $1 AND a.id = $2",
            tenant_id, app_id)
        if row is None:
            raise BadRequest("App unavailable: it has not been published.", code="app_unavailable")
        await self.published_cache.put(row)
        return self._opened(tenant_id, app_id, row)

    async def published_version(self, tenant_id: str, app_id: str, version: int) -> PublishedApp:
        """One published version of the app, current or not (Dify's POST /workflows/{id}/run)."""
        cached = self._published.get((tenant_id, app_id, version))
        if cached is not None:
            return cached
        row = await self.pool.fetchrow(
            "SELECT a.id, a.tenant_id, a.mode, a.name, v.version, v.dsl FROM apps a JOIN app_versions v"
            " ON v.app_id = a.id WHERE a.tenant_id = $1 AND a.id = $2 AND v.version = $3", tenant_id, app_id, version)
        if row is None:
            raise NotFound("Workflow not found.", code="workflow_not_found")
        return self._opened(tenant_id, app_id, row)

    def _opened(self, tenant_id: str, app_id: str, row) -> PublishedApp:
        # Opened for runs (RunRequested.graph); no route returns a published app's environment.
        app = PublishedApp(row["id"], row["tenant_id"], row["mode"], row["name"], row["version"],
                           app_secrets.reveal(json.loads(row["dsl"]), self.sealer))
        self._published[(tenant_id, app_id, app.version)] = app
        while len(self._published) > self.PUBLISHED_CACHE:
            self._published.popitem(last=False)
        return app

    async def for_key(self, tenant_id: str, app_id: str, version: int | None) -> tuple[str, dict[str, Any]]:
        """An app key's app as its callers see it: (mode, DSL) of the published version its
        admission read (kept in memory), else of the draft."""
        if version is not None:
            app = await self.published(tenant_id, app_id, version)
            return app.mode, app.dsl
        return (await self.get(tenant_id, app_id))["mode"], await self.draft(tenant_id, app_id)

    # ---- API keys ------------------------------------------------------------------------

    async def create_key(self, tenant_id: str, kind: str, app_id: str | None, account_id: str | None,
                         name: str = "") -> dict:
        if kind == "app":
            await self.get(tenant_id, app_id)
        secret = security.new_secret(security.APP_KEY_PREFIX if kind == "app" else security.DATASET_KEY_PREFIX)
        key_id = new_id()
        row = await self.pool.fetchrow(
            "INSERT INTO api_keys (id, tenant_id, kind, app_id, key_hash, hint, name, created_by)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING created_at",
            key_id, tenant_id, kind, app_id, security.digest(secret), security.hint(secret), name, account_id)
        return {"id": key_id, "type": kind, "token": secret, "name": name, "app_id": app_id,
                "created_at": int(row["created_at"].timestamp())}

    async def list_keys(self, tenant_id: str, kind: str, app_id: str | None) -> list[dict]:
        rows = await self.pool.fetch(
            "SELECT id, hint, name, app_id, rpm_limit, rpm_unlimited, tokens_per_day, created_at, last_used_at"
            " FROM api_keys"
            " WHERE tenant_id = $1 AND kind = $2 AND ($3::text IS NULL OR app_id = $3) ORDER BY created_at",
            tenant_id, kind, app_id)
        return [{"id": r["id"], "type": kind, "token": r["hint"], "name": r["name"], "app_id": r["app_id"],
                 "rpm_limit": r["rpm_limit"], "rpm_unlimited": r["rpm_unlimited"],
                 "tokens_per_day": r["tokens_per_day"],
                 "created_at": int(r["created_at"].timestamp()),
                 "last_used_at": int(r["last_used_at"].timestamp()) if r["last_used_at"] else None} for r in rows]

    async def update_key_limits(self, tenant_id: str, key_id: str, changes: dict[str, int | None]) -> None:
        """Set the limits named in `changes` (checked by limits.check_key_limits): a number, or
        None = unlimited (the rate as an explicit flag; the tokens as no quota of the key's own)."""
        rpm, tokens = "rpm_limit" in changes, "tokens_per_day" in changes
        if await self.pool.execute(
                "UPDATE api_keys SET rpm_limit = CASE WHEN $3 THEN $4::int ELSE rpm_limit END,"
                " rpm_unlimited = CASE WHEN $3 THEN $4::int IS NULL ELSE rpm_unlimited END,"
                " tokens_per_day = CASE WHEN $5 THEN $6::bigint ELSE tokens_per_day END"
                " WHERE tenant_id = $1 AND id = $2", tenant_id, key_id, rpm, changes.get("rpm_limit"), tokens,
                changes.get("tokens_per_day")) == "UPDATE 0":
            raise NotFound("API key not found.", code="api_key_not_exists")
        await self.key_cache.forget(await self.key_cache.digests(self.pool, key_id=key_id))

    async def delete_key(self, tenant_id: str, kind: str, key_id: str, app_id: str | None = None) -> None:
        gone = await self.pool.fetchval("DELETE FROM api_keys WHERE tenant_id = $1 AND kind = $2 AND id = $3"
                                        " AND ($4::text IS NULL OR app_id = $4) RETURNING key_hash",
                                        tenant_id, kind, key_id, app_id)
        if gone is None:
            raise NotFound("API key not found.", code="api_key_not_exists")
        await self.key_cache.forget([gone])  # revoked on every replica from the next request on
