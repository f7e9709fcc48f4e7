"""Settings of the gateway service (env prefix `LOOM_GATEWAY_`; shared ones keep `LOOM_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from loom_common.blobs import StorageSettings
from loom_common.settings import ServiceSettings


class GatewaySettings(ServiceSettings, StorageSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_GATEWAY_", extra="ignore",
                                      populate_by_name=True)

    http_port: int = 8080
    # /healthz /readyz /metrics: on this internal port, never on the public one.
    admin_port: int | None = 9080

    # Console sessions: HS256 JWTs. Unset secret = one derived at first start and kept under
    # $LOOM_HOME/gateway/jwt.secret, so replicas sharing LOOM_HOME (or this env) agree.
    jwt_secret: str | None = None
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 14 * 24 * 3600
    invitation_ttl_s: int = 7 * 24 * 3600

    # Protection. Limits are fixed one-minute windows counted in Postgres (shared by replicas);
    # 0 = unlimited. Per-key and per-workspace values can be overridden in the console.
    key_rpm: int = 600
    workspace_rpm: int = 3000
    workspace_tokens_per_day: int = 0
    # Without Redis: seconds this process keeps a key's admission row (store/key_cache.LocalKeys);
    # a key with no limit to count is then admitted without Postgres. A change made through
    # another replica takes up to this long here (this replica's own: at once). 0 = off.
    key_admission_cache_s: float = Field(2.0, ge=0, le=60)
    # Tokens a run or completion holds of a token quota while it runs, when it names no
    # max_tokens (and an app's model node none): settled to what it used at its end.
    token_reservation_default: int = 1024
    # Failed console logins per e-mail and per client address within a fixed window (seconds):
    # past either, a login answers 429 with Retry-After until the window ends.
    login_max_failures_per_account: int = 5
    login_max_failures_per_ip: int = 20
    login_failure_window_s: int = 900
    max_body_bytes: int = 16 * 1024 * 1024
    max_upload_bytes: int = 15 * 1024 * 1024
    cors_origins: list[str] = ["*"]
    audit_retention_days: int = 90
    audit_sweep_interval_s: float = 3600.0

    # Runs.
    blocking_timeout_s: float = 300.0   # a blocking call gives up waiting for the run's end
    ping_interval_s: float = 10.0       # SSE keep-alive (Dify sends `event: ping` every 10 s)
    stream_idle_timeout_s: float = 300.0  # an SSE stream ends (error run_timeout) after this long without an event
    inference_timeout_s: float = 300.0
    model_pull_timeout_s: float = 6 * 3600.0  # the console's model pull (a multi-GB download)
    rag_timeout_s: float = 60.0
    # The console's tool routes (registering an MCP server lists its tools meanwhile).
    tools_timeout_s: float = 60.0
    # Runs waiting for an orchestrator worker (the RUNS queue, every replica's together) past
    # which a new run is refused at once: 503 `overloaded` with Retry-After, rather than every
    # client waiting out its timeout behind a growing queue (domain/run_admission.py). 0 = no limit.
    max_queued_runs: int = 1000
    overload_retry_after_s: int = 2

    # Uploaded files: `StorageSettings` (storage_backend, storage_dir, s3_*), shared with the
    # orchestrator's settings.

    # Workspace settings (console): secrets (model endpoint API keys, S3 keys) are sealed with
    # this Fernet key; unset = one generated once into $LOOM_HOME/gateway/secret.key (mode 0600).
    secret_key: str | None = None
    # Model and S3 endpoint URLs a workspace admin sets: loopback and private addresses are
    # refused unless allowed here (a model server on the same host or LAN).
    endpoints_allow_loopback: bool = False
    endpoints_allow_private: bool = False
    # How often the workspaces' model endpoints are registered with the inference service again.
    endpoint_sync_interval_s: float = 60.0

    # Triggers of workflow apps (domain/schedules.py, store/webhooks.py). Every replica runs
    # the scheduler (a tick is claimed by one); it looks for due ticks every schedule_poll_s.
    scheduler_enabled: bool = True
    schedule_poll_s: float = 10.0
    # A webhook request's body at most (bytes), and how far its signed timestamp may be from
    # the gateway's clock (seconds; also how long a seen signature is remembered).
    webhook_max_body_bytes: int = 256 * 1024
    webhook_replay_window_s: int = 300

    # The app template catalogue (domain/templates.py); unset: the repository's templates/.
    templates_dir: Path | None = None

    def gateway_home(self) -> Path:
        return self.home / "gateway"
