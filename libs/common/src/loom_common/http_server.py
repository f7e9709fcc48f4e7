"""The ASGI server a service's HTTP port runs on, inside the service's own event loop (beside
its gRPC server and NATS consumers), with or without TLS:

    uvicorn    HTTP/1.1 (the default: as fast as Granian for the gateway's HTTP/1.1 in the clear)
    granian    HTTP/1.1 and HTTP/2: h2 over TLS (ALPN) and h2c in the clear (prior knowledge);
               its embedded mode runs on the caller's loop; its TLS (Rust) is the cheaper one
    hypercorn  HTTP/1.1 and HTTP/2, in Python: there to be measured (bench/gateway.py --servers);
               slower than Granian, on one HTTP/2 connection by far (docs/operations.md, HTTP/2)

Each takes TLS 1.3 only unless the settings allow 1.2 (loom_common.tls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import Protocol

import uvicorn

from loom_common.tls import ServerTls


class HttpServer(Protocol):
    async def serve(self) -> None: ...

    def stop(self) -> None: ...


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime decides when HTTP stops."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.exit_asked = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self):
        yield

    async def main_loop(self) -> None:
        # uvicorn's own loop wakes ten times a second to see whether it should exit; this one is
        # told (`UvicornServer.stop`) and wakes once a second, for the Date header: every service
        # runs one or two of these, and an idle one costs less CPU.
        counter = 0
        while not await self.on_tick(counter):
            counter += 10  # on_tick refreshes the Date header on multiples of 10
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exit_asked.wait(), 1.0)


class _UvicornConfig(uvicorn.Config):
    """uvicorn's own TLS context has no minimum version: ours replaces it once loaded."""

    def __init__(self, *args, tls_context: ssl.SSLContext | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._tls_context = tls_context

    def load(self) -> None:
        super().load()
        if self._tls_context is not None:
            self.ssl = self._tls_context


class UvicornServer:
    def __init__(self, app, host: str, port: int, tls: ServerTls | None) -> None:
        kwargs = {}
        if tls is not None:  # is_ssl must hold for uvicorn to wrap the socket; the context is ours
            kwargs = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file),
                      "tls_context": tls.ssl_context(("http/1.1",))}
        config = _UvicornConfig(app, host=host, port=port, log_config=None, access_log=False,
                                lifespan="off", **kwargs)
        self._server = _Uvicorn(config)

    async def serve(self) -> None:
        await self._server.serve()

    def stop(self) -> None:
        self._server.should_exit = True
        self._server.exit_asked.set()


class GranianServer:
    def __init__(self, app, host: str, port: int, tls: ServerTls | None) -> None:
        from granian.constants import HTTPModes, Interfaces, SSLProtocols
        from granian.server.embed import Server

        tls_kwargs = {}
        if tls is not None:
            tls_kwargs = {"ssl_cert": tls.cert_file, "ssl_key": tls.key_file,
                          "ssl_protocol_min": SSLProtocols.tls13 if tls.min_version == "1.3" else SSLProtocols.tls12}
        self._host, self._port = host, port
        # ASGINL: no lifespan (the runtime starts and stops everything itself, as with uvicorn).
        self._server = Server(app, address=host, port=port, interface=Interfaces.ASGINL, http=HTTPModes.auto,
                              websockets=False, log_enabled=False, backlog=1024, **tls_kwargs)
        # "Embedded server is experimental!" on every start: known, and not the operator's business.
        logging.getLogger("granian").setLevel(logging.ERROR)

    async def serve(self) -> None:
        # Granian binds with SO_REUSEPORT: a second server on a taken port would bind silently
        # and the kernel split connections between the two. A bind without it fails loudly first
        # (SO_REUSEADDR: old connections in TIME_WAIT after a restart do not count, a listener does).
        with socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((self._host, self._port))
        await self._server.serve()

    def stop(self) -> None:
        self._server.stop()


class HypercornServer:
    """Hypercorn (HTTP/1.1, h2, h2c in pure Python): kept to be measured against the other two
    (bench/gateway.py --servers), not recommended: see the module's docstring."""

    def __init__(self, app, host: str, port: int, tls: ServerTls | None) -> None:
        from hypercorn.config import Config

        self._app = app
        self._config = Config()
        self._config.bind = [f"{host}:{port}"]
        self._config.accesslog = None
        self._config.errorlog = logging.getLogger("hypercorn.error")
        if tls is not None:
            self._config.certfile, self._config.keyfile = str(tls.cert_file), str(tls.key_file)
            context = tls.ssl_context(("h2", "http/1.1"))
            self._config.create_ssl_context = lambda: context  # ours: with its minimum version
        self._stop = asyncio.Event()

    async def serve(self) -> None:
        from hypercorn.asyncio import serve

        await serve(self._app, self._config, shutdown_trigger=self._stop.wait, mode="asgi")

    def stop(self) -> None:
        self._stop.set()


def make_server(kind: str, app, host: str, port: int, tls: ServerTls | None) -> HttpServer:
    if kind == "granian":
        return GranianServer(app, host, port, tls)
    if kind == "hypercorn":
        return HypercornServer(app, host, port, tls)
    if kind == "uvicorn":
        return UvicornServer(app, host, port, tls)
    raise ValueError(f"http_server: {kind!r} is not one of uvicorn, granian, hypercorn")
