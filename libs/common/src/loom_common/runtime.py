"""The composition root every service shares: start, serve, drain, stop.

A service builds a `ServiceRuntime`, names its dependencies (`dependency`), its durable
consumers (`consumer`) and its background loops (`background`), registers its NATS
subscribers on `runtime.broker`, its routes on `runtime.http` and its servicers on
`runtime.grpc`, then calls `run()`. One lifespan, the same in every service:

    start:  logging + tracing -> database and migrations -> NATS connected (streams declared,
            durable consumers aligned with their declarations in loom_common.bus) ->
            the service's dependencies, in the order named -> consumers start fetching ->
            gRPC server -> background loops -> admin/API HTTP server
    SIGTERM or SIGINT:
            /readyz turns 503 -> background loops cancelled -> the broker stops fetching and
            waits for in-flight handlers (unacked messages go back to the stream) -> gRPC
            finishes open calls within the grace period -> the dependencies close, in reverse
            -> HTTP closes -> the pool closes.

So no message is consumed and no call served before every dependency is built, and none is
closed while a handler may still use it. A dependency is an async context manager factory
(`build(runtime)`): what it yields is the dependency, what follows the yield closes it. Other
resources (a credentials provider, a TLS reloader, an optional database for the standalone
engine) plug in the same way, without touching the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import inspect
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import grpc
from fastapi import FastAPI
from faststream.nats import NatsBroker, NatsUserPassword
from faststream.security import BaseSecurity
from prometheus_client import Gauge

from loom_common import consumers, db, messaging, service_auth, tls
from loom_common.bus import Consumer
from loom_common.bus_telemetry import TraceContext, message_counts
from loom_common.grpc_auth import ServiceTokenInterceptor
from loom_common.health import Readiness, admin_router, instrument_http
from loom_common.http_server import HttpServer, make_server
from loom_common.logging import configure_logging, get_logger
from loom_common.migrations import apply_migrations
from loom_common.read_replica import Reads
from loom_common.settings import ServiceSettings
from loom_common.telemetry import setup_tracing

Hook = Callable[["ServiceRuntime"], Awaitable[None]]
T = TypeVar("T")
# How a dependency is made: given the runtime (its settings, pool, broker), an async context
# manager whose value is the dependency and whose exit closes it.
Build = Callable[["ServiceRuntime"], AbstractAsyncContextManager[T]]


class Dependency(Generic[T]):
    """One of a service's dependencies (its clients, stores, domain services), built by the
    runtime at start before anything is consumed or served, closed in reverse order at stop.
    Handlers registered before start hold the `Dependency` and call `get()` when they run."""

    def __init__(self, name: str, build: Build[T]) -> None:
        self.name = name
        self.build = build
        self._value: T | None = None
        self._built = False

    @property
    def built(self) -> bool:
        return self._built

    def get(self) -> T:
        if not self._built:
            raise RuntimeError(f"dependency {self.name!r} used before the runtime built it (or after it closed)")
        return self._value  # type: ignore[return-value]

    def _set(self, value: T) -> None:
        self._value, self._built = value, True

    def _unset(self) -> None:
        self._value, self._built = None, False


def made(make: Callable[[ServiceRuntime], Awaitable[T] | T],
         close: Callable[[T], Awaitable[None]] | None = None) -> Build[T]:
    """A dependency's build from a function that makes it (plain or async) and, if it holds
    something to release, the coroutine function that closes it: `made(make, Client.close)`."""

    @contextlib.asynccontextmanager
    async def build(rt: ServiceRuntime) -> AsyncIterator[T]:
        value = make(rt)
        if inspect.isawaitable(value):
            value = await value
        try:
            yield value  # type: ignore[misc]
        finally:
            if close is not None:
                await close(value)  # type: ignore[arg-type]

    return build


@contextlib.asynccontextmanager
async def _hook_at_start(hook: Hook, rt: ServiceRuntime) -> AsyncIterator[None]:
    await hook(rt)
    yield


@contextlib.asynccontextmanager
async def _hook_at_stop(hook: Hook, rt: ServiceRuntime) -> AsyncIterator[None]:
    yield
    await hook(rt)


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
    """The NATS URLs (a cluster's comma-separated), always without credentials: those go to the
    connection as its user and password (`_nats_security`). A URL's own credentials are not
    used for the servers a cluster announces (nats-py adds them bare, next to the configured
    URL, since "user:pw@host:port" is not "host:port"), so a client whose node died reconnected
    to an announced URL with no credentials, was refused, and stayed disconnected."""
    urls = [u.strip() for u in settings.nats_url.split(",") if u.strip()]
    return [urlunsplit(urlsplit(u)._replace(netloc=urlsplit(u).netloc.rpartition("@")[2])) for u in urls]


def _nats_credentials(settings: ServiceSettings) -> tuple[str, str] | None:
    """The service's NATS user: its own settings, else the first URL's credentials."""
    if settings.nats_user:
        return settings.nats_user, settings.nats_password or ""
    for url in settings.nats_url.split(","):
        parts = urlsplit(url.strip())
        if parts.username:
            return unquote(parts.username), unquote(parts.password or "")
    return None


def _nats_security(settings: ServiceSettings) -> BaseSecurity | None:
    ssl_context = tls.client_context() if settings.nats_url.startswith("tls://") else None
    if credentials := _nats_credentials(settings):
        return NatsUserPassword(*credentials, ssl_context=ssl_context)
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


async def _cancel(tasks: list[asyncio.Task]) -> None:
    """Cancel and wait for each task; again while one swallowed its cancellation (a library
    that turns CancelledError into its own error inside a loop that goes on)."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)


class ServiceRuntime:
    def __init__(self, name: str, settings: ServiceSettings, *, version: str = "0.0.0",
                 schema: str | None = None, migrations: str | None = None,
                 grpc_port: int | None = None, use_nats: bool = True, http_metrics: bool = True) -> None:
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
                # The trace context and the two message counts the dashboard reads, without
                # FastStream's span per message and five series (≈ 200 µs a message: bus_telemetry).
                middlewares=[TraceContext, message_counts(name)],
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
        if http_metrics:  # False: the service counts its requests in an ASGI layer of its own (the gateway's)
            instrument_http(self.http, name)
        # grpc.aio servers bind to the running event loop, so the server is made in start();
        # services register their servicers beforehand with add_grpc_service.
        self.grpc: grpc.aio.Server | None = None
        self._grpc_services: list[Callable[[grpc.aio.Server], None]] = []
        self._dependencies: list[tuple[Dependency, bool]] = []
        self._exit = contextlib.AsyncExitStack()
        self._consumers: dict[str, tuple[Consumer, Gauge | None, float]] = {}
        self._background: list[tuple[str, Hook]] = []
        self._tasks: list[asyncio.Task] = []
        self._stop = asyncio.Event()
        self._http_server: HttpServer | None = None
        self._admin_server: HttpServer | None = None

    # ---- registration ----------------------------------------------------------------

    def add_grpc_service(self, register: Callable[[grpc.aio.Server], None]) -> None:
        """e.g. `rt.add_grpc_service(lambda s: add_FooServicer_to_server(FooServicer(), s))`."""
        assert self.grpc_port is not None, "this runtime has no gRPC port"
        self._grpc_services.append(register)


    def dependency(self, name: str, build: Build[T], *, on_http_state: bool = False) -> Dependency[T]:
        """Name a dependency, built at start after the pool and the NATS connection and before
        any consumer, gRPC call or HTTP request; closed at stop in reverse order of building.
        `on_http_state`: routes reach it as `request.app.state.<name>` while it is built."""
        assert not (on_http_state and not name.isidentifier()), "an http state name must be an identifier"
        dep = Dependency(name, build)
        self._dependencies.append((dep, on_http_state))
        return dep

    def consumer(self, consumer: Consumer, *, backlog: Gauge | None = None, every_s: float = 5.0) -> None:
        """A durable consumer of this service (a `loom_common.bus` declaration, with this
        deployment's ack_wait): aligned before fetching starts, its backlog kept in `backlog`."""
        self._consumers[consumer.durable] = (consumer, backlog, every_s)

    def background(self, name: str, run: Hook) -> None:
        """A loop (timer, sweeper, watcher) started once the service serves, cancelled first
        at stop, before the broker drains and any dependency closes."""
        self._background.append((name, run))

    def on_start(self, hook: Hook) -> Hook:
        """A step among the dependencies (in the order registered), before anything is consumed
        or served. Prefer `dependency` for anything that must be closed again."""
        self.dependency(f"on_start:{getattr(hook, '__qualname__', 'hook')}", lambda rt: _hook_at_start(hook, rt))
        return hook

    def on_stop(self, hook: Hook) -> Hook:
        """A step at stop, among the dependencies' teardowns (reverse order of registration)."""
        self.dependency(f"on_stop:{getattr(hook, '__qualname__', 'hook')}", lambda rt: _hook_at_stop(hook, rt))
        return hook

    async def _build(self, dep: Dependency, on_http_state: bool) -> None:
        manager = dep.build(self)
        dep._set(await manager.__aenter__())
        if on_http_state:
            setattr(self.http.state, dep.name, dep.get())

        async def close() -> None:
            try:
                await manager.__aexit__(None, None, None)
            except Exception as exc:  # the rest still closes
                self.log.warning("dependency close failed", dependency=dep.name, error=repr(exc))
            finally:
                dep._unset()

        self._exit.push_async_callback(close)

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
            # Connected (publishing works) but not yet fetching: the dependencies come first.
            await _until_up("nats", self.broker.connect)
            await messaging.ensure_streams(self.broker, s.jetstream_replicas)
            for consumer, _, _ in self._consumers.values():
                await consumers.align(self.broker, consumer)
        self._exit = contextlib.AsyncExitStack()
        try:
            for dep, on_http_state in self._dependencies:
                await self._build(dep, on_http_state)
        except BaseException:
            await self._exit.aclose()  # what was built closes again, in reverse
            raise
        if self.broker is not None:
            broker = self.broker
            await broker.start()  # the subscribers start fetching: everything they use is built
            self.readiness.add("nats", lambda: broker.ping(timeout=1.0))
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
        for consumer, gauge, every_s in self._consumers.values():
            if gauge is not None and self.broker is not None:
                self._tasks.append(asyncio.create_task(
                    consumers.watch_backlog(self.broker, consumer, gauge, every_s), name=f"backlog:{consumer.durable}"))
        for name, run in self._background:
            self._tasks.append(asyncio.create_task(run(self), name=name))
        self.log.info("service started", http_port=s.http_port, grpc_port=self.grpc_port,
                      tls=self.tls is not None, http_server=s.http_server)

    async def stop(self) -> None:
        self.readiness.draining = True
        self.log.info("service draining")
        await _cancel(self._tasks)
        self._tasks.clear()
        if self.broker is not None:
            try:
                await self.broker.stop()  # waits up to graceful_timeout for in-flight handlers
            except Exception as exc:  # NATS unreachable (reconnecting) now: the rest still closes
                self.log.warning("the NATS connection did not drain", error=repr(exc))
        if self.grpc is not None:
            await self.grpc.stop(grace=self.settings.graceful_timeout_s)
        await self._exit.aclose()  # the dependencies, in reverse order of building
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
