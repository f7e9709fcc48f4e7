"""Settings every service shares: where NATS and Postgres are, logging and tracing.

Environment variables use the `LOOM_` prefix (`LOOM_NATS_URL`, `LOOM_DATABASE_URL`, ...).
A service subclasses `ServiceSettings` with its own prefix (`LOOM_INFERENCE_`) for its own
fields; the shared fields keep their `LOOM_` names through explicit aliases, so one
`LOOM_NATS_URL` points every service at the same bus.

`LOOM_HOME` is where every Loom process keeps its files (generated secrets, the model store,
local uploads): one folder for all five services and the standalone engine, by default
`~/.loom` (the engine's default before; the other services used `./.loom` of their working
directory, which made two processes started from different folders disagree about a generated
secret). `make up`, Compose and Kubernetes set it explicitly.

The seed's deployment names are read too: `DB_HOST`, `DB_PORT`, `DB_USERNAME`, `DB_PASSWORD`,
`DB_DATABASE` make the database URL and `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD` the Redis
URL, but only where Loom's own `LOOM_DATABASE_URL` / `LOOM_REDIS_URL` is absent: Loom's name
wins whole, the parts are never mixed into it (docs/operations.md, environment table).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/loom"
DEFAULT_REDIS_PORT = 6379


def loom_home() -> Path:
    """`LOOM_HOME`, else `~/.loom` (see the module's docstring)."""
    return Path(os.environ.get("LOOM_HOME") or Path.home() / ".loom").expanduser()


def _shared(name: str, default, **kw):
    """A field read from `LOOM_<NAME>` whatever the subclass's own prefix is."""
    return Field(default, validation_alias=AliasChoices(f"LOOM_{name.upper()}", name), **kw)


def _seed(env: str, **kw):
    """A field read from the seed's unprefixed name alone (`DB_HOST`), never `LOOM_...`."""
    return Field(None, validation_alias=env, **kw)


def _userinfo(user: str | None, password: SecretStr | None) -> str:
    """`user:password@` for a URL, each part percent-quoted ('@' or '/' in a password)."""
    if user is None and password is None:
        return ""
    secret = "" if password is None else ":" + quote(password.get_secret_value(), safe="")
    return quote(user or "", safe="") + secret + "@"


def _read_secret_file(path: Path, env: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as e:
        raise ValueError(f"{env}: cannot read {path}: {e.strerror}") from None
    if not value:
        raise ValueError(f"{env}: {path} is empty")
    return value


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 literal


class LoomSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_", extra="ignore", populate_by_name=True)

    # A NATS cluster: its servers comma-separated (nats://a:4222,nats://b:4222); the client
    # also learns the others from whichever it reaches, and reconnects to them.
    nats_url: str = _shared("nats_url", DEFAULT_NATS_URL)
    # Where this process keeps its files (LOOM_HOME; see loom_home()). The alias is LOOM_HOME
    # alone: a `home` alias would read the shell's $HOME (environment names match case-blind).
    home: Path = Field(default_factory=loom_home, validation_alias="LOOM_HOME")
    # Copies JetStream keeps of each stream (and its consumers): 3 on a 3-node cluster, so a
    # node lost loses no message and stops no stream; 1 on a single server. Applied at start
    # (messaging.ensure_streams), an existing stream updated to it.
    jetstream_replicas: int = _shared("jetstream_replicas", 1, ge=1, le=5)
    # This service's NATS user (devstack.nats_auth: each may publish only its own subjects);
    # unset: the URL's own credentials, if any.
    nats_user: str | None = _shared("nats_user", None)
    nats_password: str | None = _shared("nats_password", None, repr=False)
    # Secrets as files (Docker/Compose secrets, a mounted Secret): `LOOM_<NAME>_FILE` is read
    # when `LOOM_<NAME>` itself is unset (deploy/compose mounts each service's own files).
    nats_password_file: Path | None = _shared("nats_password_file", None)
    database_url_file: Path | None = _shared("database_url_file", None)
    redis_url_file: Path | None = _shared("redis_url_file", None)
    # A DSN with this service's own role and password (devstack.db_roles), never the superuser's.
    database_url: str = _shared("database_url", DEFAULT_DATABASE_URL, repr=False)
    # A hot standby of that database (loom_common.read_replica): read-heavy queries go there while
    # it keeps up, writes never; None = every read on the primary.
    database_read_url: str | None = _shared("database_read_url", None, repr=False)
    # A replica that has not caught up with the primary for this long gets no reads.
    database_read_max_lag_s: float = _shared("database_read_max_lag_s", 5.0, gt=0)
    # The seed's names for the same database, used only without LOOM_DATABASE_URL.
    db_host: str | None = _seed("DB_HOST")
    db_port: int | None = _seed("DB_PORT", gt=0, lt=65536)
    db_username: str | None = _seed("DB_USERNAME")
    db_password: SecretStr | None = _seed("DB_PASSWORD")
    db_database: str | None = _seed("DB_DATABASE")
    # Optional Redis (redis://[:password@]host:port/db, rediss:// for TLS; a cluster's seed
    # node); None = no Redis. REDIS_HOST/PORT/PASSWORD make it without LOOM_REDIS_URL.
    redis_url: str | None = _shared("redis_url", None, repr=False)
    redis_host: str | None = _seed("REDIS_HOST")
    redis_port: int | None = _seed("REDIS_PORT", gt=0, lt=65536)
    redis_password: SecretStr | None = _seed("REDIS_PASSWORD")
    # A Redis call slower than this counts as Redis down: the caller falls back to Postgres.
    redis_timeout_s: float = _shared("redis_timeout_s", 0.5, gt=0)
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
    # TLS (loom_common.tls): this process's certificate and key (both set: its HTTP and gRPC
    # listeners serve TLS), the oldest version they accept, and the CA internal clients verify
    # Loom's servers against (set: every internal client speaks TLS).
    tls_cert_file: str | None = _shared("tls_cert_file", None)
    tls_key_file: str | None = _shared("tls_key_file", None)
    tls_min_version: Literal["1.3", "1.2"] = _shared("tls_min_version", "1.3")
    tls_ca_file: str | None = _shared("tls_ca_file", None)

    @field_validator("nats_password_file", "database_url_file", "redis_url_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        return None if value == "" else value  # `VAR:` in compose passes an empty string

    @model_validator(mode="after")
    def _from_seed_names(self):
        """Fill database_url / redis_url / nats_password from `..._FILE`, else build the URLs
        from the seed's parts, when Loom's own name is absent."""
        for name in ("nats_password", "database_url", "redis_url"):
            path = getattr(self, f"{name}_file")
            if name not in self.model_fields_set and path is not None:
                setattr(self, name, _read_secret_file(path, f"LOOM_{name.upper()}_FILE"))
        seed_db = (self.db_host, self.db_port, self.db_username, self.db_password, self.db_database)
        if "database_url" not in self.model_fields_set and any(v is not None for v in seed_db):
            self.database_url = (
                f"postgresql://{_userinfo(self.db_username or 'postgres', self.db_password)}"
                f"{_host(self.db_host or '127.0.0.1')}:{self.db_port or 5432}/"
                f"{quote(self.db_database or 'loom', safe='')}")
        if "redis_url" not in self.model_fields_set:
            if self.redis_host is not None:
                self.redis_url = (f"redis://{_userinfo(None, self.redis_password)}"
                                  f"{_host(self.redis_host)}:{self.redis_port or DEFAULT_REDIS_PORT}/0")
            elif self.redis_port is not None or self.redis_password is not None:
                raise ValueError("REDIS_PORT or REDIS_PASSWORD is set but REDIS_HOST is not: "
                                 "set REDIS_HOST (or LOOM_REDIS_URL) to use Redis")
        return self


def external_database_url() -> str | None:
    """The database this environment names (`LOOM_DATABASE_URL`, or the seed's `DB_*` parts),
    or None: `make up` then embeds its own Postgres."""
    s = LoomSettings()
    # the validator's assignment marks database_url as set, like an explicit value
    return s.database_url if "database_url" in s.model_fields_set else None


class ServiceSettings(LoomSettings):
    """Base for one service's settings: adds the admin HTTP listener every service has."""

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # An internal port for /healthz /readyz /metrics, kept off a public HTTP port (the
    # gateway's); None = they are served on http_port (services whose HTTP port is internal).
    admin_host: str = "127.0.0.1"
    admin_port: int | None = None
    # The ASGI server (loom_common.http_server): uvicorn (HTTP/1.1) or granian (HTTP/1.1 and
    # HTTP/2: h2 over TLS, h2c in the clear), e.g. LOOM_GATEWAY_HTTP_SERVER=granian; hypercorn
    # (HTTP/2 too, slower) is there to be measured.
    http_server: Literal["uvicorn", "granian", "hypercorn"] = "uvicorn"
