"""The internal credentials of a Docker Compose deployment (`deploy/compose`), made in the
stack itself so that `docker compose up` needs no step from the user.

`loom-stack compose-secrets DIR` runs once in a one-shot container before Postgres and NATS
start, on a volume that only it mounts whole. It generates every password once (mode 0600,
kept across restarts) and lays out one folder per consumer, which compose mounts alone
(`volume.subpath`, read-only) into that container:

    DIR/postgres/password            the superuser's (POSTGRES_PASSWORD_FILE of the postgres image)
    DIR/nats/nats.conf               every NATS user with its subject permissions (nats_auth)
    DIR/<service>/database_url       postgresql://loom_<service>:...@postgres:5432/loom (db_roles)
    DIR/<service>/nats_password      the service's own NATS user's
    DIR/redis/redis.conf             `requirepass` for the optional Redis (compose's redis.yml)
    DIR/gateway/redis_url            redis://:...@redis:6379/0, read only with redis.yml
    DIR/generated/                   the passwords themselves, for this command alone

`--provision-db` (the compose `db-bootstrap` service, once Postgres answers) then makes each
service's role and schema with the superuser's DSN, exactly as `make up` and the Kubernetes Job
do (`db_roles.provision`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from loom_common import secret_files
from loom_common.devstack import db_roles, nats_auth

SUPERUSER = "loom"
DATABASE = "loom"
POSTGRES_HOST = "postgres"
REDIS_HOST = "redis"
NATS_STORE = "/data"
# The official redis image's user: redis-server runs as it (compose's `user: 999:999`) and
# must read its requirepass file, which the other 0600 files keep from everyone but root.
REDIS_UID = 999


def _write(path: Path, text: str) -> None:
    """Replace `path` with `text`, mode 0600 from its creation (a derived file: rewritten each run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _password(root: Path, name: str) -> str:
    return secret_files.read_or_create(root / "generated" / name,
                                       lambda: secrets.token_urlsafe(24).encode()).decode().strip()


def admin_dsn(root: Path, *, host: str = POSTGRES_HOST, port: int = 5432, superuser: str = SUPERUSER) -> str:
    """The superuser's DSN (compose's Postgres by default; the keywords are for tests)."""
    return f"postgresql://{superuser}:{_password(root, 'postgres-superuser')}@{host}:{port}/{DATABASE}"


def write(root: Path, **server) -> dict[str, str]:
    """Generate what is missing and lay out every consumer's folder; returns each service's DSN.
    `server`: admin_dsn's keywords (another Postgres than compose's, in tests)."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    generated = root / "generated"
    _write(root / "postgres" / "password", _password(root, "postgres-superuser") + "\n")
    db_passwords = db_roles.load_passwords(generated)
    users = nats_auth.load_users(generated)
    dsns = {svc: db_roles.service_dsn(admin_dsn(root, **server), svc, pw) for svc, pw in db_passwords.items()}
    for svc, dsn in dsns.items():
        _write(root / svc / "database_url", dsn + "\n")
        _write(root / svc / "nats_password", users.passwords[svc] + "\n")
    _write(root / "nats" / "nats.conf", nats_auth.render_config(
        host="0.0.0.0", port=4222, monitor_port=8222, store_dir=Path(NATS_STORE), users=users))
    redis = _password(root, "redis")
    _write(root / "redis" / "redis.conf", f"requirepass {redis}\n")
    if os.geteuid() == 0:
        for path in (root / "redis", root / "redis" / "redis.conf"):
            os.chown(path, REDIS_UID, REDIS_UID)
    _write(root / "gateway" / "redis_url", f"redis://:{redis}@{REDIS_HOST}:6379/0\n")
    return dsns


def provision_db(root: Path, **server) -> list[str]:
    """Each service's role and schema (db_roles), as the superuser; returns the roles."""
    passwords = db_roles.load_passwords(root / "generated")
    db_roles.provision_sync(admin_dsn(root, **server), passwords)
    return [db_roles.role_name(svc) for svc in passwords]
