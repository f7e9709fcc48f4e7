"""Managing a tenant's registry: plain HTTP tools, OpenAPI imports, SQL connections, MCP servers,
deletes.

This is what the console (through the gateway) calls; the executor only reads the registry.
Every input is checked here and refused with a typed `InvalidArguments` naming the field.
Credentials arrive once, are sealed by the registry and never come back out: the specs
returned here are the listing view (`has_credentials` only).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator

from loom_tools.domain.types import NAME_RE, ToolSpec
from loom_tools.errors import InvalidArguments, UpstreamError
from loom_tools.mcp.runner import headers_of
from loom_tools.mcp.session import McpSessions, local_name
from loom_tools.net.tools import AUTH_SCHEMA, METHODS
from loom_tools.openapi import importer
from loom_tools.settings import ToolsSettings
from loom_tools.sql.runner import connection_tools
from loom_tools.store.registry import Registry

# Names under these prefixes belong to the built-ins: a tenant's tool must not shadow one.
RESERVED_PREFIXES = ("time.", "math.", "json.", "text.", "http.", "code.", "chart.", "tickets.", "medkg.")


def _check_name(name: str, field: str = "name") -> None:
    if not NAME_RE.match(name or ""):
        raise InvalidArguments(f"argument {field!r}: {name!r} must match {NAME_RE.pattern}", field=field)
    if name.startswith(RESERVED_PREFIXES) or f"{name}." in RESERVED_PREFIXES:
        raise InvalidArguments(f"argument {field!r}: names under {', '.join(RESERVED_PREFIXES)} are reserved "
                               "for built-in tools", field=field)


def _check_credentials(credentials: dict[str, Any] | None) -> None:
    if credentials is None:
        return
    errors = list(Draft202012Validator(AUTH_SCHEMA).iter_errors(credentials))
    if errors:
        # Never echo the credential: name the field and the expected shapes only.
        raise InvalidArguments("argument 'credentials': expected {type: api_key, header, value} or "
                               "{type: bearer, token}", field="credentials")


def _check_url(url: str, field: str) -> None:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArguments(f"argument {field!r}: an absolute http(s) URL is required", field=field)


def _listing(specs: list[ToolSpec]) -> list[ToolSpec]:
    return [replace(s, credentials=None, has_credentials=bool(s.credentials)) for s in specs]


class Catalog:
    def __init__(self, registry: Registry, settings: ToolsSettings, mcp: McpSessions | None = None) -> None:
        self._registry = registry
        self._settings = settings
        self._mcp = mcp

    async def register_http(self, tenant_id: str, *, name: str, description: str, method: str, url: str,
                            parameters: dict[str, Any] | None, headers: dict[str, str] | None = None,
                            credentials: dict[str, Any] | None = None, replace: bool = False) -> list[ToolSpec]:
        _check_name(name)
        method = (method or "GET").upper()
        if method not in METHODS:
            raise InvalidArguments(f"argument 'method': one of {METHODS}", field="method")
        _check_url(url, "url")
        _check_credentials(credentials)
        spec = ToolSpec(name, description, "http", parameters or {"type": "object"},
                        {"method": method, "url": url, "headers": dict(headers or {})}, credentials)
        await self._registry.add(tenant_id, [spec], replace=replace)
        return _listing([spec])

    async def import_openapi(self, tenant_id: str, *, prefix: str, spec: str, base_url: str = "",
                             credentials: dict[str, Any] | None = None, replace: bool = False) -> list[ToolSpec]:
        _check_name(prefix, "prefix")
        _check_credentials(credentials)
        if base_url:
            _check_url(base_url, "base_url")
        doc = importer.parse(spec)
        specs = importer.operations(doc, prefix=prefix, base_url=importer.base_url_of(doc, None, base_url or None),
                                    credentials=credentials)
        await self._registry.add(tenant_id, specs, replace_prefix=prefix if replace else None)
        return _listing(specs)

    async def add_connection(self, tenant_id: str, *, name: str, driver: str, dsn: str = "", path: str = "",
                             description: str = "", replace: bool = False) -> list[ToolSpec]:
        _check_name(name)
        specs = connection_tools(name, driver, description=description, dsn=dsn or None, path=path or None,
                                 sqlite_roots=self._settings.sqlite_dirs())
        await self._registry.add(tenant_id, specs, replace=replace)
        return _listing(specs)

    async def add_mcp_server(self, tenant_id: str, *, name: str, url: str, headers: dict[str, str] | None = None,
                             credentials: dict[str, Any] | None = None, description: str = "",
                             replace: bool = False) -> list[ToolSpec]:
        """List the server's tools now (through the SSRF guard) and register each as `<name>.<tool>`.

        `replace` re-lists: the tools under `<name>.` are dropped first, so a tool the server no
        longer offers goes too. A server that cannot be reached is refused (nothing registered)."""
        _check_name(name)
        _check_url(url, "url")
        _check_credentials(credentials)
        if self._mcp is None:
            raise InvalidArguments("MCP servers are not enabled in this tools service", field="url")
        config = {"url": url, "headers": dict(headers or {})}
        try:
            remote = await self._mcp.list_tools(url, headers_of(config, credentials))
        except UpstreamError as exc:  # the console names the field to fix
            raise UpstreamError(f"argument 'url': the MCP server's tools could not be listed: {exc.message}",
                                field="url") from exc
        if not remote:
            raise InvalidArguments("argument 'url': the MCP server lists no tools", field="url")
        specs, seen = [], set()
        for tool in remote:
            local = f"{name}.{local_name(tool.name)}"
            if local in seen:  # two remote names that differ only in unsafe characters
                raise InvalidArguments(f"argument 'url': the MCP server's tool names clash as {local!r}",
                                       field="url")
            seen.add(local)
            desc = tool.description or f"{tool.name} (MCP server {name})"
            specs.append(ToolSpec(local, desc if not description else f"{desc} [{description}]"[:2000], "mcp",
                                  tool.input_schema or {"type": "object"}, {**config, "tool": tool.name},
                                  credentials))
        await self._registry.add(tenant_id, specs, replace_prefix=name if replace else None)
        return _listing(specs)

    async def delete(self, tenant_id: str, name: str) -> int:
        return await self._registry.delete(tenant_id, name)
