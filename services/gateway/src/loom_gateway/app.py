"""Composition root of the gateway: settings -> stores and clients -> domain -> HTTP routers.

    HTTP  /console/api/...     console: setup, login, workspaces, members, apps, keys, audit
          /v1/...              Dify-compatible service API (app keys) and knowledge API (dataset keys)
          /v1/chat/completions, /v1/embeddings, /v1/models   OpenAI-compatible (app keys)
          /healthz /readyz /metrics (runtime), /openapi.json /docs
    NATS  publishes runs.requested and stop requests; reads each run's events (ordered consumers)
    gRPC  clients of inference (OpenAI API) and rag (knowledge API)
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

from starlette.middleware.cors import CORSMiddleware

from loom_common import blobs, bus, redis_link, secret_files
from loom_common.logging import get_logger
from loom_common.runtime import ServiceRuntime, made
from loom_gateway import __version__
from loom_gateway.api import (
    console_annotations,
    console_apps,
    console_auth,
    console_human_inputs,
    console_runs,
    console_settings,
    console_stats,
    console_templates,
    console_tools,
    console_triggers,
    console_workspaces,
    errors,
    mcp_server,
    openai_compat,
    openapi,
    service_annotations,
    service_app,
    service_datasets,
    service_human_inputs,
    service_knowledge,
    service_runs,
    service_webhooks,
)
from loom_gateway.api.context import Gateway
from loom_gateway.api.middleware import Edge
from loom_gateway.bus.outcomes import outcomes_router
from loom_gateway.bus.runs import NatsRunBus
from loom_gateway.clients.inference import InferenceClient
from loom_gateway.clients.rag import RagClient
from loom_gateway.clients.tools import ToolsClient
from loom_gateway.domain import sealing, security
from loom_gateway.domain.endpoint_urls import UrlPolicy
from loom_gateway.domain.execution import Execution
from loom_gateway.domain.knowledge_metadata import KnowledgeMetadata
from loom_gateway.domain.published_cache import PublishedCache
from loom_gateway.domain.run_admission import RunAdmission
from loom_gateway.domain.schedules import Due, Scheduler
from loom_gateway.domain.trigger_runs import TriggerRuns
from loom_gateway.settings import GatewaySettings
from loom_gateway.store.accounts import Accounts
from loom_gateway.store.annotations import Annotations
from loom_gateway.store.apps import Apps
from loom_gateway.store.audit import AuditLog
from loom_gateway.store.conversations import Conversations
from loom_gateway.store.files import Files
from loom_gateway.store.key_cache import KeyCache
from loom_gateway.store.knowledge_metadata import MetadataFields
from loom_gateway.store.knowledge_tags import KnowledgeTags
from loom_gateway.store.limits import Defaults, Limits
from loom_gateway.store.login_throttle import LoginPolicy
from loom_gateway.store.model_endpoints import ModelEndpoints
from loom_gateway.store.rate_counters import RateCounters
from loom_gateway.store.schedules import Schedules
from loom_gateway.store.webhooks import Webhooks
from loom_gateway.store.workspace_settings import WorkspaceBlobStore, WorkspaceSettings

log = get_logger(__name__)

# Routes are matched in order, one by one: the API that apps call on every request comes first.
ROUTERS = (service_runs, service_app, openai_compat, service_knowledge, service_datasets,
           service_webhooks, console_auth,
           console_workspaces, console_apps, console_templates, console_runs, console_stats, console_settings,
           console_triggers, service_annotations, console_annotations)
ROUTERS += (console_tools,)  # a workspace's tools: the tools service's registry
ROUTERS += (service_human_inputs, console_human_inputs)  # the forms of runs paused on human input


def jwt_secret(settings: GatewaySettings) -> str:
    if settings.jwt_secret:
        return settings.jwt_secret
    # Created with mode 0600 from the start and published whole (see secret_files).
    return secret_files.read_or_create(settings.gateway_home() / "jwt.secret",
                                       lambda: secrets.token_urlsafe(48).encode()).decode()


def _blob_store(settings: GatewaySettings):
    return blobs.open_store(settings)


def build(settings: GatewaySettings | None = None) -> ServiceRuntime:
    settings = settings or GatewaySettings()
    rt = ServiceRuntime("gateway", settings, version=__version__, schema="gateway",
                        migrations="loom_gateway.migrations", http_metrics=False)  # Edge counts requests
    http = rt.http
    http.title, http.description = "Loom gateway", __doc__
    errors.install(http)
    openapi.install(http, [module.router for module in ROUTERS])
    for module in ROUTERS:
        http.include_router(module.router)
    # Added last = outermost: the Edge (size limits, security headers, Server-Timing, request
    # metrics) acts before anything reads the body, and on CORS's answers too.
    http.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                        allow_headers=["*"], expose_headers=["Retry-After"],
                        allow_credentials="*" not in settings.cors_origins)
    http.add_middleware(Edge, service="gateway", max_bytes=settings.max_body_bytes,
                        upload_paths=("/files/upload", "create-by-file", "create_by_file", "update-by-file",
                                      "update_by_file"), upload_max_bytes=settings.max_upload_bytes)
    # The lifespan's dependencies (loom_common.runtime), built in this order once the pool and
    # NATS are up, before the outcomes consumer fetches or a request is served; closed in
    # reverse once the broker drained.
    inference = rt.dependency("inference", made(lambda rt: InferenceClient(
        settings.inference_addr, settings.inference_timeout_s, settings.model_pull_timeout_s), InferenceClient.close))
    rag = rt.dependency("rag", made(lambda rt: RagClient(settings.rag_addr, settings.rag_timeout_s), RagClient.close))
    tools = rt.dependency("tools", made(lambda rt: ToolsClient(settings.tools_addr, settings.tools_timeout_s),
                                        ToolsClient.close))
    # Optional Redis (LOOM_REDIS_URL): cached key admissions and rate counters the replicas
    # share; never the only copy, so Postgres answers whenever Redis cannot.
    link = rt.dependency("redis", made(
        lambda rt: redis_link.open_link(settings.redis_url, timeout_s=settings.redis_timeout_s), _close_link))
    mcp_server.install(rt, settings.max_body_bytes)  # /v1/mcp: every published app as an MCP server

    @contextlib.asynccontextmanager
    async def wire(rt: ServiceRuntime) -> AsyncIterator[Gateway]:
        pool, reads = rt.pool, rt.reads
        # Cached admissions and graphs are signed with the replicas' shared secret (redis_link.Signed).
        cache_secret = jwt_secret(settings).encode()
        key_cache = KeyCache(link.get(), cache_secret, local_ttl_s=settings.key_admission_cache_s)
        counters = RateCounters(link.get(), pool) if link.get() is not None else None
        issuer = security.TokenIssuer(jwt_secret(settings), settings.access_token_ttl_s, settings.refresh_token_ttl_s)
        conversations = Conversations(pool, reads)
        # Workspace settings (console): read on every use, so a change needs no restart.
        sealer = sealing.Sealer(sealing.load_key(settings.secret_key, settings.gateway_home()))
        policy = UrlPolicy(settings.endpoints_allow_loopback, settings.endpoints_allow_private)
        workspace_settings = WorkspaceSettings(pool, sealer, policy, str(settings.storage_root()),
                                               settings.default_chat_model, settings.default_embedding_model)
        run_bus = NatsRunBus(rt.broker)
        gate = Limits(pool, Defaults(settings.key_rpm, settings.workspace_rpm, settings.workspace_tokens_per_day),
                      keys=key_cache, counters=counters)
        g = Gateway(settings=settings, accounts=Accounts(pool, issuer, settings.invitation_ttl_s, LoginPolicy(
                        settings.login_max_failures_per_account, settings.login_max_failures_per_ip,
                        settings.login_failure_window_s), key_cache=key_cache),
                    apps=Apps(pool, settings.default_chat_model, sealer, key_cache,
                              PublishedCache(link.get(), cache_secret)),
                    conversations=conversations,
                    execution=Execution(pool, conversations, run_bus, reads, gate, RunAdmission(
                        run_bus.queue_depth, max_queued=settings.max_queued_runs,
                        retry_after_s=settings.overload_retry_after_s)),
                    files=Files(pool, WorkspaceBlobStore(workspace_settings, _blob_store(settings)),
                                settings.max_upload_bytes),
                    limits=gate,
                    audit=AuditLog(pool, settings.audit_retention_days), inference=inference.get(), rag=rag.get(),
                    model_endpoints=ModelEndpoints(pool, sealer, policy, inference.get()),
                    workspace_settings=workspace_settings, reads=reads)
        g.schedules, g.webhooks = Schedules(pool), Webhooks(pool, sealer, window_s=settings.webhook_replay_window_s)
        g.triggers = TriggerRuns(g.apps, g.execution, gate)
        g.annotations = Annotations(pool, inference.get())
        g.knowledge_tags, g.knowledge_metadata = KnowledgeTags(pool), KnowledgeMetadata(MetadataFields(pool), rag.get())
        g.tools = tools.get()
        if sealed := await g.apps.seal_stored_secrets():  # secrets stored before sealing existed
            log.info("sealed stored app secrets", rows=sealed)
        yield g

    # Routes reach it as request.app.state.gw (api/deps.py), set by the runtime once built.
    gw = rt.dependency("gw", wire, on_http_state=True)
    # Every run's outcome, recorded whether or not a client watched it (runs.finished).
    rt.broker.include_router(outcomes_router(rt.broker, lambda: gw.get().execution))
    rt.consumer(bus.GATEWAY_RUN_OUTCOMES)
    rt.background("sweep", lambda rt: _sweep(gw.get()))
    rt.background("register-endpoints", lambda rt: _register_endpoints(gw.get()))
    if settings.scheduler_enabled:
        rt.background("scheduler", lambda rt: scheduler(gw.get()).run())

    async def mirror_counters(rt: ServiceRuntime) -> None:
        if (counters := gw.get().limits.counters) is not None:  # Redis's counts, to Postgres in batches
            await counters.run()

    rt.background("rate-counters", mirror_counters)
    return rt


async def _close_link(link) -> None:
    if link is not None:
        await link.close()


def scheduler(g: Gateway) -> Scheduler:
    """The schedule triggers' loop: each claimed tick starts its app's run, followed to its end."""
    assert g.schedules is not None and g.triggers is not None

    async def fire(due: Due) -> str:
        run = await g.triggers.start(due.tenant_id, due.app_id, due.inputs, source="schedule")
        await service_webhooks.follow_in_background(g, run)
        return run.run_id

    return Scheduler(g.schedules, fire, g.settings.schedule_poll_s)


async def _sweep(g: Gateway) -> None:
    """Retention: old audit rows and spent rate-limit windows go, once per interval."""
    while True:
        try:
            removed = await g.audit.sweep()
            if g.webhooks is not None:
                await g.webhooks.sweep()
            await g.limits.sweep()
            if removed:
                log.info("audit retention sweep", removed=removed)
        except Exception as exc:
            log.warning("sweep failed", error=repr(exc))
        await asyncio.sleep(g.settings.audit_sweep_interval_s)


async def _register_endpoints(g: Gateway) -> None:
    """The workspaces' model endpoints, registered with the inference service at start and
    again every interval (it keeps them in memory: a restarted one gets them back)."""
    while True:
        try:
            await g.model_endpoints.sync()
        except Exception as exc:
            log.warning("model endpoint registration failed", error=repr(exc))
        await asyncio.sleep(g.settings.endpoint_sync_interval_s)
