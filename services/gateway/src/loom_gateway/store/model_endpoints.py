"""A workspace's remote model endpoints (Dify's model providers): an OpenAI-compatible server
or an Ollama server, with an optional API key sealed at rest and never returned.

Stored in Postgres and read on every use, so a change takes effect without a restart. A
connection test makes a real call, to the address the URL was vetted to (endpoint_urls):
`GET <base_url>/models` (OpenAI-compatible: base_url ends in /v1 as OpenAI's does) or
`GET <base_url>/api/tags` (Ollama), and answers the model names the server lists.

Each of an endpoint's `models` is registered with the inference service for the workspace
(`Registry`: RegisterRemoteModel), so the workspace's apps can name it like a local model; the
inference service keeps registrations in memory, so `sync()` registers every stored endpoint
again (at start and periodically: a restarted inference service gets them back). A failed
registration never fails the save: the endpoint answers `registered: false` and the next
sync tries again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import httpx

from loom_common.ids import new_id
from loom_common.logging import get_logger
from loom_gateway.domain import sealing
from loom_gateway.domain.endpoint_urls import UrlPolicy, Vetted, vet
from loom_gateway.domain.errors import ApiError, BadRequest, Conflict, NotFound

log = get_logger(__name__)

KINDS = ("openai", "ollama")
MAX_ENDPOINTS = 50           # per workspace
TEST_TIMEOUT_S = 10.0
MAX_LISTING_BYTES = 1 << 20  # a model listing larger than this is not a model server's
MAX_LISTED = 500


class Registry(Protocol):
    """Where a workspace's remote models are served from (the inference service)."""

    async def register_remote(self, tenant_id: str, name: str, backend: str, base_url: str, api_key: str | None,
                              remote_model: str = "") -> bool: ...
    async def remove_remote(self, tenant_id: str, name: str) -> bool: ...


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    kind: str
    base_url: str
    api_key: str | None = None
    models: tuple[str, ...] = ()


def _body(row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "kind": row["kind"], "base_url": row["base_url"],
            "api_key_set": row["api_key"] is not None, "api_key_hint": row["api_key_hint"],
            "models": json.loads(row["models"]), "created_at": int(row["created_at"].timestamp())}


class ModelEndpoints:
    def __init__(self, pool: asyncpg.Pool, sealer: sealing.Sealer, policy: UrlPolicy, registry: Registry | None = None):
        self.pool, self.sealer, self.policy, self.registry = pool, sealer, policy, registry

    async def _register(self, tenant_id: str, spec: EndpointSpec) -> bool:
        """Register the endpoint's models with the inference service; False if any failed."""
        if self.registry is None:
            return False
        ok = True
        for model in spec.models:
            try:
                await self.registry.register_remote(tenant_id, model, spec.kind, spec.base_url, spec.api_key)
            except ApiError as exc:
                ok = False
                log.warning("model endpoint not registered", tenant_id=tenant_id, model=model, error=exc.message)
        return ok

    async def sync(self) -> int:
        """Register every stored endpoint's models again; returns how many endpoints were fully registered."""
        done = 0
        for row in await self.pool.fetch("SELECT * FROM model_endpoints ORDER BY created_at"):
            spec = EndpointSpec(row["name"], row["kind"], row["base_url"], self.sealer.open(row["api_key"]),
                                tuple(json.loads(row["models"])))
            done += await self._register(row["tenant_id"], spec)
        return done

    async def list(self, tenant_id: str) -> list[dict]:
        rows = await self.pool.fetch("SELECT * FROM model_endpoints WHERE tenant_id = $1 ORDER BY created_at",
                                     tenant_id)
        return [_body(r) for r in rows]

    async def create(self, tenant_id: str, account_id: str | None, spec: EndpointSpec) -> dict:
        if spec.kind not in KINDS:
            raise BadRequest(f"kind must be one of {list(KINDS)}", field="kind")
        vetted = await vet(spec.base_url, self.policy, field="base_url")
        count = await self.pool.fetchval("SELECT count(*) FROM model_endpoints WHERE tenant_id = $1", tenant_id)
        if count >= MAX_ENDPOINTS:
            raise BadRequest(f"a workspace holds at most {MAX_ENDPOINTS} model endpoints", field="name")
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO model_endpoints (id, tenant_id, name, kind, base_url, api_key, api_key_hint, models,"
                " created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9) RETURNING *",
                new_id(), tenant_id, spec.name, spec.kind, vetted.url, self.sealer.seal(spec.api_key),
                sealing.hint(spec.api_key), json.dumps(list(spec.models)), account_id)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a model endpoint named {spec.name!r} exists", field="name") from None
        registered = await self._register(tenant_id, EndpointSpec(spec.name, spec.kind, vetted.url, spec.api_key,
                                                                  spec.models))
        return {**_body(row), "registered": registered}

    async def delete(self, tenant_id: str, endpoint_id: str) -> None:
        models = await self.pool.fetchval("DELETE FROM model_endpoints WHERE tenant_id = $1 AND id = $2"
                                          " RETURNING models", tenant_id, endpoint_id)
        if models is None:
            raise NotFound("Model endpoint not found.", code="model_endpoint_not_exists")
        for model in json.loads(models) if self.registry else []:
            try:
                await self.registry.remove_remote(tenant_id, model)
            except ApiError as exc:  # the inference service forgets it at its next restart anyway
                log.warning("model endpoint not unregistered", tenant_id=tenant_id, model=model, error=exc.message)

    async def models(self, tenant_id: str, engine: list[dict] | None) -> dict[str, Any]:
        """What the workspace's apps can name: the engine's own models (every workspace's; None:
        the inference service could not be asked) and the models of its endpoints."""
        out = [{"name": m["name"], "kind": m.get("kind", "chat"), "source": "engine", "endpoint_id": None,
                "endpoint_name": None} for m in engine or []]
        for e in await self.list(tenant_id):
            out += [{"name": name, "kind": "chat", "source": "endpoint", "endpoint_id": e["id"],
                     "endpoint_name": e["name"]} for name in e["models"]]
        return {"data": out, "engine_available": engine is not None}

    async def stored(self, tenant_id: str, endpoint_id: str) -> EndpointSpec:
        """A stored endpoint with its key opened (for a call, never for a response)."""
        row = await self.pool.fetchrow("SELECT * FROM model_endpoints WHERE tenant_id = $1 AND id = $2",
                                       tenant_id, endpoint_id)
        if row is None:
            raise NotFound("Model endpoint not found.", code="model_endpoint_not_exists")
        return EndpointSpec(row["name"], row["kind"], row["base_url"], self.sealer.open(row["api_key"]),
                            tuple(json.loads(row["models"])))

    async def test(self, spec: EndpointSpec) -> dict:
        """Call the server once; `ok` False (with the reason) when it cannot be reached or answers oddly."""
        if spec.kind not in KINDS:
            raise BadRequest(f"kind must be one of {list(KINDS)}", field="kind")
        vetted = await vet(spec.base_url, self.policy, field="base_url")
        t0 = time.perf_counter()
        try:
            models = await _list_models(vetted, spec.kind, spec.api_key)
        except (httpx.HTTPError, ValueError) as exc:
            return {"ok": False, "error": _reason(exc), "models": [],
                    "latency_ms": round((time.perf_counter() - t0) * 1000, 1)}
        return {"ok": True, "error": None, "models": models,
                "latency_ms": round((time.perf_counter() - t0) * 1000, 1)}


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"the server answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {TEST_TIMEOUT_S:.0f} s"
    if isinstance(exc, httpx.HTTPError):
        return f"cannot connect: {type(exc).__name__}"
    return str(exc)


async def _list_models(vetted: Vetted, kind: str, api_key: str | None) -> list[str]:
    url, headers, extensions = vetted.pinned("/models" if kind == "openai" else "/api/tags")
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    async with httpx.AsyncClient(timeout=TEST_TIMEOUT_S, follow_redirects=False, trust_env=False) as client:
        async with client.stream("GET", url, headers=headers, extensions=extensions) as r:
            r.raise_for_status()
            body = b""
            async for chunk in r.aiter_bytes():
                body += chunk
                if len(body) > MAX_LISTING_BYTES:
                    raise ValueError(f"the model listing is larger than {MAX_LISTING_BYTES} bytes")
    try:
        doc = json.loads(body)
    except ValueError:
        raise ValueError("the server's answer is not JSON: is base_url right?") from None
    items = doc.get("data" if kind == "openai" else "models") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError("the server's answer lists no models: is base_url (and kind) right?")
    key = "id" if kind == "openai" else "name"
    return [str(m[key])[:200] for m in items[:MAX_LISTED] if isinstance(m, dict) and m.get(key)]
