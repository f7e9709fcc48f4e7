"""The composition root every service shares: start, serve, drain, stop.

A service builds a `ServiceRuntime`, registers its NATS subscribers on `runtime.broker`,
its routes on `runtime.http` and its servicers on `runtime.grpc`, then calls `run()`:

    start:  logging + tracing -> database and migrations -> NATS (streams declared) ->
            gRPC server -> admin/API HTTP server
    SIGTERM or SIGINT:
            /readyz turns 503 -> the broker stops fetching and waits for in-flight handlers
            (unacked messages go back to the stream) -> gRPC finishes open calls within the
            grace period -> HTTP closes -> the pool closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import signal
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
from fastapi import FastAPI
from faststream.nats import NatsBroker, NatsUserPassword
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.prometheus import NatsPrometheusMiddleware
from faststream.security import BaseSecurity
from prometheus_client import REGISTRY

from loom_common import db, messaging, service_auth, tls
from loom_common.grpc_auth import ServiceTokenInterceptor
from loom_common.health import Readiness, admin_router, instrument_http
from loom_common.http_server import HttpServer, make_server
from loom_common.logging import configure_logging, get_logger
from loom_common.migrations import apply_migrations
from loom_common.read_replica import Reads
from loom_common.settings import ServiceSettings
from loom_common.telemetry import setup_tracing

Hook = Callable[["ServiceRuntime"], Awaitable[None]]


async def _until_up(what: str, connect: Callable[[], Awaitable[object]], timeout_s: float = 60.0) -> None:
    """Retry a first connection: under `make up` the servers start beside the services."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            await connect()
            return
        except (TimeoutError, OSError, asyncpg.CannotConnectNowError) as exc:
            if loop.time() > deadline:
                raise
            get_logger("runtime").info("waiting for dependency", dependency=what, error=repr(exc))
            await asyncio.sleep(0.5)
        except Exception as exc:  # nats-py raises its own NoServersError
            if loop.time() > deadline or "NoServers" not in type(exc).__name__:
                raise
            await asyncio.sleep(0.5)


def _nats_servers(settings: ServiceSettings) -> list[str]:
    """The NATS URLs (a cluster's comma-separated), without their own credentials when the
    settings name the service's user."""
    urls = [u.strip() for u in settings.nats_url.split(",") if u.strip()]
    if not settings.nats_user:
        return urls
    return [urlunsplit(urlsplit(u)._replace(netloc=urlsplit(u).netloc.rpartition("@")[2])) for u in urls]


def _nats_security(settings: ServiceSettings) -> BaseSecurity | None:
    ssl_context = tls.client_context() if settings.nats_url.startswith("tls://") else None
    if settings.nats_user:
        return NatsUserPassword(settings.nats_user, settings.nats_password or "", ssl_context=ssl_context)
    return BaseSecurity(ssl_context=ssl_context) if ssl_context else None


# A gRPC port belongs to one process: with gRPC's default SO_REUSEPORT a second server started
# on the same port binds silently and the kernel splits connections between the two. Without
# it, a clash fails loudly at start-up.
GRPC_EXCLUSIVE_PORT = [("grpc.so_reuseport", 0)]


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None  # asyncio's own


class ServiceRuntime:
    def __init__(self, name: str, settings: ServiceSettings, *, version: str = "0.0.0",
                 schema: str | None = None, migrations: str | None = None,
                 grpc_port: int | None = None, use_nats: bool = True) -> None:
        self.name = name
        self.settings = settings
        self.schema = schema
        self.migrations = migrations
        self.grpc_port = grpc_port
        self.log = get_logger(name)
        configure_logging(name, level=settings.log_level, fmt=settings.log_format)
        # This process's service identity: signs its gRPC calls, verifies the calls it serves.
        self.auth = service_auth.configure(name)
        # TLS on every listener when the settings name a certificate (loom_common.tls).
        self.tls = tls.server_tls(settings)
        self.tracer_provider = setup_tracing(name, otlp_endpoint=settings.otlp_endpoint)

        self.readiness = Readiness()
        self.broker: NatsBroker | None = None
        if use_nats:
            self.broker = NatsBroker(
                _nats_servers(settings),
                # This service's own NATS user (devstack.nats_auth), when it has one; over TLS
                # (a tls:// URL) verified against Loom's CA.
                security=_nats_security(settings),
                name=f"loom-{name}",
                graceful_timeout=settings.graceful_timeout_s,
                middlewares=[
                    NatsTelemetryMiddleware(tracer_provider=self.tracer_provider),
                    NatsPrometheusMiddleware(registry=REGISTRY, app_name=name, metrics_prefix="loom"),
                ],
                max_reconnect_attempts=-1,
                # FastStream's own lines through the service's JSON log; its two lines per
                # message ("Received", "Processed") at DEBUG: at INFO they were most of a
                # worker's log and cost CPU on every message.
                logger=logging.getLogger("faststream"),
                log_level=logging.DEBUG,
            )
        self.pool: asyncpg.Pool | None = None
        # Where read-heavy queries go: the read replica while it keeps up, else `pool`.
        self.reads: Reads | None = None
        self._replica_probe: asyncio.Task | None = None
        # FastAPI's own OpenTelemetry keeps the request's server span (the trace a run carries
        # onwards); its per-dependency "operation" spans cost ~7 % of a small request's CPU.
        self.http = FastAPI(title=f"loom-{name}", version=version, telemetry={"operation_spans": False})
        # Admin routes (/healthz /readyz /metrics) go on the service's HTTP port, or, when the
        # settings name an admin port (the gateway's public port), on that internal port alone.
        self.admin_http: FastAPI | None = None
        if settings.admin_port is not None:
            self.admin_http = FastAPI(title=f"loom-{name}-admin", version=version, openapi_url=None)
            self.admin_http.include_router(admin_router(name, self.readiness))
            instrument_http(self.admin_http, name)
        else:
            self.http.include_router(admin_router(name, self.readiness))
        instrument_http(self.http, name)
        # grpc.aio servers bind to the running event loop, so the server is made in start();
        # services register their servicers beforehand with add_grpc_service.
        self.grpc: grpc.aio.Server | None = None
        self._grpc_services: list[Callable[[grpc.aio.Server], None]] = []
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self._stop = asyncio.Event()
        self._http_server: HttpServer | None = None
        self._admin_server: HttpServer | None = None

    # ---- registration ----------------------------------------------------------------

    def add_grpc_service(self, register: Callable[[grpc.aio.Server], None]) -> None:
        """e.g. `rt.add_grpc_service(lambda s: add_FooServicer_to_server(FooServicer(), s))`."""
        assert self.grpc_port is not None, "this runtime has no gRPC port"
        self._grpc_services.append(register)


    def on_start(self, hook: Hook) -> Hook:
        """Run after infrastructure is up and before the service reports ready."""
        self._on_start.append(hook)
        return hook

    def on_stop(self, hook: Hook) -> Hook:
        """Run after the broker drained, before the pool closes (in reverse order)."""
        self._on_stop.append(hook)
        return hook

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        if self.migrations is not None:
            assert self.schema, "migrations need a schema"
            await _until_up("postgres", lambda: db.ensure_database(s.database_url))
            await apply_migrations(s.database_url, self.schema, self.migrations)
        if self.schema is not None:
            self.pool = await db.create_pool(s.database_url, schema=self.schema,
                                             min_size=s.db_pool_min, max_size=s.db_pool_max)
            pool = self.pool
            self.readiness.add("postgres", lambda: pool.fetchval("SELECT true"))
            replica = None
            if s.database_read_url:  # connected lazily (min_size 0): a replica down is no reason not to start
                replica = await db.create_pool(s.database_read_url, schema=self.schema, min_size=0,
                                               max_size=s.db_pool_max)
            self.reads = Reads(self.pool, replica, max_lag_s=s.database_read_max_lag_s)
            if replica is not None:
                self._replica_probe = asyncio.create_task(self.reads.run())
        if self.broker is not None:
            broker = self.broker
            await _until_up("nats", broker.connect)
            await messaging.ensure_streams(self.broker, s.jetstream_replicas)
            await self.broker.start()
            self.readiness.add("nats", lambda: broker.ping(timeout=1.0))
        for hook in self._on_start:
            await hook(self)
        if self.grpc_port is not None:
            from opentelemetry.instrumentation.grpc import aio_server_interceptor

            # The token check first: an unauthenticated call is refused before anything else runs.
            self.grpc = grpc.aio.server(interceptors=[ServiceTokenInterceptor(self.auth), aio_server_interceptor()],
                                        options=GRPC_EXCLUSIVE_PORT)
            for register in self._grpc_services:
                register(self.grpc)
            address = f"{s.http_host}:{self.grpc_port}"
            if self.tls is not None:
                self.grpc.add_secure_port(address, self.tls.grpc_credentials())
            else:
                self.grpc.add_insecure_port(address)
            await self.grpc.start()
        self.log.info("service started", http_port=s.http_port, grpc_port=self.grpc_port,
                      tls=self.tls is not None, http_server=s.http_server)

    async def stop(self) -> None:
        self.readiness.draining = True
        self.log.info("service draining")
        if self.broker is not None:
            await self.broker.stop()  # waits up to graceful_timeout for in-flight handlers
        if self.grpc is not None:
            await self.grpc.stop(grace=self.settings.graceful_timeout_s)
        for hook in reversed(self._on_stop):
            with contextlib.suppress(Exception):
                await hook(self)
        for server in (self._http_server, self._admin_server):
            if server is not None:
                server.stop()
        if self._replica_probe is not None:
            self._replica_probe.cancel()
            with contextlib.suppress(BaseException):
                await self._replica_probe
        if self.reads is not None and self.reads.replica is not None:
            await self.reads.replica.close()
        if self.pool is not None:
            await self.pool.close()
        self.log.info("service stopped")

    def request_stop(self) -> None:
        self._stop.set()

    async def serve(self) -> None:
        """Start everything, serve until SIGTERM/SIGINT (or `request_stop`), then drain."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        s = self.settings
        self._http_server = make_server(s.http_server, self.http, s.http_host, s.http_port, self.tls)
        servers = [asyncio.create_task(self._http_server.serve())]
        if self.admin_http is not None:
            # The admin port (probes, metrics): HTTP/1.1 under uvicorn whatever the public port
            # runs, encrypted like it when the service has a certificate.
            self._admin_server = make_server("uvicorn", self.admin_http, s.admin_host, s.admin_port, self.tls)
            servers.append(asyncio.create_task(self._admin_server.serve()))
        stop_task = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait({*servers, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        for task in servers:
            if task in done and task.exception() is not None:
                self.log.error("http server failed", error=repr(task.exception()))
        await self.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*servers), timeout=5.0)
        stop_task.cancel()

    def run(self) -> None:
        # A crash in native code (llama.cpp, grpc, a driver) kills the process before any log
        # line: faulthandler writes every thread's Python stack to stderr (the service log) first.
        faulthandler.enable()
        # uvloop: the event loop and its sockets in C (asyncpg, NATS, uvicorn and grpc.aio all
        # run on it); a loaded gateway answered ~1.5x the requests per CPU second with it.
        with asyncio.Runner(loop_factory=_loop_factory(self.settings.event_loop)) as runner:
            runner.run(self.serve())
