"""A local certificate authority and one certificate per Loom process, for `LOOM_TLS=1 make up`
(and for tests): everything under `<dir>/` (`.loom/tls/` under `make up`).

    ca.pem, ca-key.pem                 the CA (10 years); clients trust ca.pem (LOOM_TLS_CA_FILE)
    <name>.pem, <name>-key.pem         a server certificate for localhost, 127.0.0.1 and ::1 and
                                       the names <name>, loom-<name> (1 year), signed by the CA

Idempotent: existing files are kept, a server certificate is only made again when it no longer
chains to the CA or expires within 30 days. Private keys are written mode 0600 in the call that
creates them (secret_files); the directory is 0700.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from loom_common import secret_files

CA_DAYS = 3650
SERVER_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class ServerCert:
    cert_file: Path
    key_file: Path
    ca_file: Path

    def env(self) -> dict[str, str]:
        """The settings that make a Loom process serve with this certificate and trust the CA."""
        return {"LOOM_TLS_CERT_FILE": str(self.cert_file), "LOOM_TLS_KEY_FILE": str(self.key_file),
                "LOOM_TLS_CA_FILE": str(self.ca_file)}


def _new_key() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    return serialization.load_pem_private_key(secret_files.read_or_create(path, _new_key), password=None)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # whole or not at all


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ensure_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    key = _key(directory / "ca-key.pem")
    path = directory / "ca.pem"
    if path.exists():
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        if cert.public_key() == key.public_key() and cert.not_valid_after_utc - _now() > RENEW_BEFORE:
            return cert, key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Loom local CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_public(path, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _still_good(path: Path, ca: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    if not path.exists():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):  # another CA's, or a bad signature
        return False
    return cert.public_key() == key.public_key() and cert.not_valid_after_utc - _now() > RENEW_BEFORE


def ensure_server_cert(directory: Path, name: str, extra_hosts: tuple[str, ...] = ()) -> ServerCert:
    """`name`'s certificate (made if missing or stale), with the CA it chains to."""
    ca, ca_key = ensure_ca(directory)
    key = _key(directory / f"{name}-key.pem")
    path = directory / f"{name}.pem"
    out = ServerCert(path, directory / f"{name}-key.pem", directory / "ca.pem")
    if _still_good(path, ca, key):
        return out
    dns = ["localhost", name, f"loom-{name}", *(h for h in extra_hosts if not _is_ip(h))]
    ips = ["127.0.0.1", "::1", *(h for h in extra_hosts if _is_ip(h))]
    san = [x509.DNSName(d) for d in dict.fromkeys(dns)] + [x509.IPAddress(ipaddress.ip_address(i))
                                                          for i in dict.fromkeys(ips)]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"loom-{name}")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_public(path, cert.public_bytes(serialization.Encoding.PEM))
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
