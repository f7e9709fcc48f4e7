"""TLS on the shared runtime, for real on loopback: the HTTP port (uvicorn and granian) and the
gRPC port of a `ServiceRuntime` with a certificate, probed by Python's ssl client and by gRPC
channels; and the local CA `LOOM_TLS=1 make up` makes (devstack.certs)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import grpc
import httpx
import pytest

from loom_common import grpc_client
from loom_common.devstack import certs, infra
from loom_common.runtime import ServiceRuntime
from loom_common.settings import ServiceSettings
from loom_common.testing import tls_handshake
from loom_common.tls import client_context

METHOD = "/loom.test.Echo/Say"


def _echo(server: grpc.aio.Server) -> None:
    async def say(request: bytes, context) -> bytes:
        return b"echo:" + request

    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "loom.test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)})])


@contextlib.asynccontextmanager
async def _serving(tmp_path: Path, http_server: str = "uvicorn", min_version: str = "1.3"):
    cert = certs.ensure_server_cert(tmp_path / "tls", "echo")
    settings = ServiceSettings(http_port=infra.free_port(), tls_cert_file=str(cert.cert_file),
                               tls_key_file=str(cert.key_file), tls_min_version=min_version,
                               http_server=http_server, log_level="WARNING")
    rt = ServiceRuntime("echo", settings, grpc_port=infra.free_port(), use_nats=False)
    rt.add_grpc_service(_echo)
    task = asyncio.create_task(rt.serve())
    verify = client_context(cert.ca_file)
    async with httpx.AsyncClient(verify=verify) as client:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"https://127.0.0.1:{settings.http_port}/healthz")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
    try:
        yield rt, cert
    finally:
        rt.request_stop()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("http_server", ["uvicorn", "granian", "hypercorn"])
async def test_http_port_negotiates_tls13_and_refuses_a_tls12_only_client(tmp_path, http_server) -> None:
    async with _serving(tmp_path, http_server) as (rt, cert):
        port = rt.settings.http_port
        version, alpn = await asyncio.to_thread(tls_handshake, port, cert.ca_file)
        assert version == "TLSv1.3"
        # HTTP/2 is Granian's and Hypercorn's (uvicorn speaks HTTP/1.1).
        h2 = http_server != "uvicorn"
        assert alpn == ("h2" if h2 else "http/1.1")
        refused, _ = await asyncio.to_thread(tls_handshake, port, cert.ca_file, max_version=ssl.TLSVersion.TLSv1_2)
        assert refused == "refused"
        async with httpx.AsyncClient(verify=client_context(cert.ca_file), http2=True) as client:
            r = await client.get(f"https://127.0.0.1:{port}/readyz")
        assert r.status_code == 200
        assert r.http_version == ("HTTP/2" if h2 else "HTTP/1.1")


@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
async def test_tls12_only_when_the_settings_allow_it(tmp_path, http_server) -> None:
    async with _serving(tmp_path, http_server, min_version="1.2") as (rt, cert):
        version, _ = await asyncio.to_thread(tls_handshake, rt.settings.http_port, cert.ca_file,
                                             max_version=ssl.TLSVersion.TLSv1_2)
        assert version == "TLSv1.2"


async def test_a_client_with_another_ca_refuses_the_server(tmp_path) -> None:
    other = certs.ensure_ca(tmp_path / "other")  # noqa: F841 - writes other/ca.pem
    async with _serving(tmp_path) as (rt, _cert):
        refused, reason = await asyncio.to_thread(tls_handshake, rt.settings.http_port, tmp_path / "other" / "ca.pem")
        assert refused == "refused" and "CERTIFICATE_VERIFY_FAILED" in str(reason)


async def test_grpc_over_tls_verifies_the_ca_and_keeps_the_service_token_check(tmp_path, monkeypatch) -> None:
    async with _serving(tmp_path) as (rt, cert):
        addr = f"127.0.0.1:{rt.grpc_port}"
        # The shared channel factory: TLS against LOOM_TLS_CA_FILE, the service token as always.
        monkeypatch.setenv("LOOM_TLS_CA_FILE", str(cert.ca_file))
        async with grpc_client.channel(addr) as channel:
            say = channel.unary_unary(METHOD)
            assert await say(b"hi", metadata=grpc_client.call_metadata(), timeout=30) == b"echo:hi"
            with pytest.raises(grpc.aio.AioRpcError) as unsigned:  # TLS is no credential of its own
                await say(b"hi", timeout=30)
            assert unsigned.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # A CA that did not sign the server's certificate: the handshake fails, no call is made.
        certs.ensure_ca(tmp_path / "other")
        monkeypatch.setenv("LOOM_TLS_CA_FILE", str(tmp_path / "other" / "ca.pem"))
        async with grpc_client.channel(addr) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as wrong_ca:
                await channel.unary_unary(METHOD)(b"hi", metadata=grpc_client.call_metadata(), timeout=10)
            assert wrong_ca.value.code() == grpc.StatusCode.UNAVAILABLE
        # A plaintext client gets nothing from a TLS port either.
        monkeypatch.delenv("LOOM_TLS_CA_FILE")
        async with grpc_client.channel(addr) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as plaintext:
                await channel.unary_unary(METHOD)(b"hi", metadata=grpc_client.call_metadata(), timeout=10)
            assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE


def test_half_a_certificate_pair_is_a_configuration_error(tmp_path) -> None:
    settings = ServiceSettings(tls_cert_file=str(tmp_path / "x.pem"))
    with pytest.raises(ValueError, match="LOOM_TLS_KEY_FILE"):
        ServiceRuntime("half", settings, use_nats=False)


def test_local_ca_is_idempotent_with_private_keys_0600(tmp_path) -> None:
    from cryptography import x509

    d = tmp_path / "tls"
    first = certs.ensure_server_cert(d, "gateway")
    stamp = {p.name: p.read_bytes() for p in d.iterdir()}
    again = certs.ensure_server_cert(d, "gateway")
    assert again == first and {p.name: p.read_bytes() for p in d.iterdir()} == stamp
    for key in ("ca-key.pem", "gateway-key.pem"):
        assert (d / key).stat().st_mode & 0o777 == 0o600, key
    assert d.stat().st_mode & 0o777 == 0o700
    leaf = x509.load_pem_x509_certificate(first.cert_file.read_bytes())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(first.ca_file.read_bytes()))
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "gateway", "loom-gateway"} <= set(names.get_values_for_type(x509.DNSName))
    # A new CA (its key lost): the server certificate is made again, chaining to the new one.
    (d / "ca-key.pem").unlink()
    renewed = certs.ensure_server_cert(d, "gateway")
    new_leaf = x509.load_pem_x509_certificate(renewed.cert_file.read_bytes())
    new_leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(renewed.ca_file.read_bytes()))


async def test_granian_refuses_a_port_another_server_holds(tmp_path) -> None:
    """Granian binds with SO_REUSEPORT; a taken port must still fail loudly, not share traffic."""
    from fastapi import FastAPI

    from loom_common.http_server import make_server

    port = infra.free_port()
    first = make_server("granian", FastAPI(), "127.0.0.1", port, None)
    task = asyncio.create_task(first.serve())
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/")).status_code == 404:
                        break
                await asyncio.sleep(0.05)
        with pytest.raises(OSError):
            await make_server("granian", FastAPI(), "127.0.0.1", port, None).serve()
    finally:
        first.stop()
        await asyncio.wait_for(task, 30)
