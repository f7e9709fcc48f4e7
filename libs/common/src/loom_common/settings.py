"""Settings every service shares: where NATS and Postgres are, logging and tracing.

Environment variables use the `LOOM_` prefix (`LOOM_NATS_URL`, `LOOM_DATABASE_URL`, ...).
A service subclasses `ServiceSettings` with its own prefix (`LOOM_INFERENCE_`) for its own
fields; the shared fields keep their `LOOM_` names through explicit aliases, so one
`LOOM_NATS_URL` points every service at the same bus.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/loom"


def _shared(name: str, default, **kw):
    """A field read from `LOOM_<NAME>` whatever the subclass's own prefix is."""
    return Field(default, validation_alias=AliasChoices(f"LOOM_{name.upper()}", name), **kw)


class LoomSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_", extra="ignore", populate_by_name=True)

    nats_url: str = _shared("nats_url", DEFAULT_NATS_URL)
    # This service's NATS user (devstack.nats_auth: each may publish only its own subjects);
    # unset: the URL's own credentials, if any.
    nats_user: str | None = _shared("nats_user", None)
    nats_password: str | None = _shared("nats_password", None, repr=False)
    # A DSN with this service's own role and password (devstack.db_roles), never the superuser's.
    database_url: str = _shared("database_url", DEFAULT_DATABASE_URL, repr=False)
    log_level: str = _shared("log_level", "INFO")
    log_format: str = _shared("log_format", "json", description="json | console")
    # OTLP/gRPC collector, e.g. http://otel-collector:4317; unset = traces stay in-process.
    otlp_endpoint: str | None = _shared("otlp_endpoint", None)
    db_pool_min: int = _shared("db_pool_min", 1)
    db_pool_max: int = _shared("db_pool_max", 10)
    # Where the gRPC services are (host:port); every client reads these.
    inference_addr: str = _shared("inference_addr", "127.0.0.1:50051")
    rag_addr: str = _shared("rag_addr", "127.0.0.1:50052")
    tools_addr: str = _shared("tools_addr", "127.0.0.1:50053")
    # Models every service may name without configuration: the ones that ship on PyPI.
    default_chat_model: str = _shared("default_chat_model", "gemma3:270m")
    default_embedding_model: str = _shared("default_embedding_model", "all-minilm:l6-v2")
    # Seconds a stopping service waits for in-flight handlers before it gives up.
    graceful_timeout_s: float = _shared("graceful_timeout_s", 15.0)
    # The asyncio event loop a service runs on: uvloop (default) or Python's own ("asyncio").
    event_loop: Literal["uvloop", "asyncio"] = _shared("event_loop", "uvloop")


class ServiceSettings(LoomSettings):
    """Base for one service's settings: adds the admin HTTP listener every service has."""

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # An internal port for /healthz /readyz /metrics, kept off a public HTTP port (the
    # gateway's); None = they are served on http_port (services whose HTTP port is internal).
    admin_host: str = "127.0.0.1"
    admin_port: int | None = None
