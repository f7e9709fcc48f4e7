"""TLS for every Loom listener and client, from three settings every service shares:

    LOOM_TLS_CERT_FILE, LOOM_TLS_KEY_FILE   this process's certificate (chain) and key: with both
                                            set, its HTTP port(s) serve HTTPS and its gRPC port TLS
    LOOM_TLS_CA_FILE                        the CA that Loom's own certificates chain to: with it
                                            set, every internal client (gRPC channels, HTTP calls to
                                            other Loom services) speaks TLS and verifies the peer
                                            against it (besides the system's CAs for HTTP)
    LOOM_TLS_MIN_VERSION                    "1.3" (default) or "1.2": TLS 1.2 only when asked for

`make up` with LOOM_TLS=1 makes a local CA and a certificate per service (devstack.certs).
gRPC's Python API has no minimum-version knob: gRPC core (BoringSSL) negotiates TLS 1.3 with
any peer that speaks it, which every Loom process does.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

CA_ENV = "LOOM_TLS_CA_FILE"
VERSIONS = {"1.3": ssl.TLSVersion.TLSv1_3, "1.2": ssl.TLSVersion.TLSv1_2}


@dataclass(frozen=True)
class ServerTls:
    """What a listener needs to serve TLS (from the service's settings)."""

    cert_file: Path
    key_file: Path
    min_version: str = "1.3"

    def __post_init__(self) -> None:
        if self.min_version not in VERSIONS:
            raise ValueError(f"tls_min_version: {self.min_version!r} is not one of {sorted(VERSIONS)}")

    def ssl_context(self, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = VERSIONS[self.min_version]
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        ctx.set_alpn_protocols(list(alpn))
        return ctx

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.key_file.read_bytes(), self.cert_file.read_bytes())])


def server_tls(settings) -> ServerTls | None:
    """The listener TLS a service's settings ask for; None when they name no certificate.
    Half a pair (a certificate without its key) is a configuration error, not plaintext."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if not cert and not key:
        return None
    if not (cert and key):
        raise ValueError("LOOM_TLS_CERT_FILE and LOOM_TLS_KEY_FILE go together: set both or neither")
    return ServerTls(Path(cert), Path(key), settings.tls_min_version)


def ca_file() -> Path | None:
    """The CA internal clients verify Loom's servers against (LOOM_TLS_CA_FILE), if any."""
    value = os.environ.get(CA_ENV)
    return Path(value) if value else None


def client_context(ca: Path | None = None) -> ssl.SSLContext:
    """A verifying client context: the system's CAs plus Loom's (`ca`, or LOOM_TLS_CA_FILE);
    TLS 1.2 at the least, hostname checked."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ca = ca or ca_file()
    if ca is not None:
        ctx.load_verify_locations(cafile=str(ca))
    return ctx


def httpx_verify(ca: Path | None = None) -> ssl.SSLContext | bool:
    """httpx's `verify=` for a call to a Loom service: Loom's CA when configured, else httpx's default."""
    ca = ca or ca_file()
    return client_context(ca) if ca is not None else True


def grpc_channel_credentials(ca: Path | None = None) -> grpc.ChannelCredentials | None:
    """Credentials that verify a Loom gRPC server against Loom's CA; None: no CA, plaintext."""
    ca = ca or ca_file()
    return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes()) if ca is not None else None


def scheme() -> str:
    """"https" when internal clients are configured for TLS (LOOM_TLS_CA_FILE), else "http"."""
    return "https" if ca_file() is not None else "http"
