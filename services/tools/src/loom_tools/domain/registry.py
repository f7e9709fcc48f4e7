"""The rules of the per-tenant tool registry (its table is store/registry.py): what may be
registered, and what of a tool's config may be shown."""

from __future__ import annotations

from loom_tools.domain.types import KINDS, NAME_RE, ToolSpec
from loom_tools.domain.validation import check_schema
from loom_tools.errors import InvalidArguments


def check_spec(spec: ToolSpec) -> None:
    if not NAME_RE.match(spec.name):
        raise InvalidArguments(f"tool name {spec.name!r} must match {NAME_RE.pattern}", field="name")
    if spec.kind not in KINDS or spec.kind in ("builtin", "tickets"):  # served by the service itself
        raise InvalidArguments(f"kind {spec.kind!r} cannot be registered", field="kind")
    check_schema(spec.parameters)


def public_config(config: dict) -> dict:
    """Config is not secret by contract, but a DSN may carry a password by mistake: drop it."""
    return {k: v for k, v in config.items() if k not in ("dsn", "password")}
