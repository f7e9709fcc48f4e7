"""deploy/compose's credentials against a real Postgres: what `secrets-init` lays out and what
`db-bootstrap` provisions let each service log in as its own role, reach its own schema and
nothing of another's (the compose stack itself needs Docker; this runs its two commands)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest

from loom_common.devstack import compose_secrets, db_roles, infra
from loom_common.settings import LoomSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def pg_root():
    """Straight under /tmp: Postgres runs as another user that must traverse every parent."""
    path = Path(tempfile.mkdtemp(prefix="loom-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_compose_bootstrap_gives_each_service_its_own_role(pg_root, monkeypatch) -> None:
    pg = infra.EmbeddedPostgres(pg_root / "pg").start()
    try:
        root = pg_root / "compose"
        # the server's superuser password plays the one secrets-init generates for compose's
        (root / "generated").mkdir(parents=True)
        shutil.copy(infra.superuser_password_file(pg_root / "secrets"), root / "generated" / "postgres-superuser")
        server = {"host": "127.0.0.1", "port": pg.port, "superuser": "postgres"}
        compose_secrets.write(root, **server)
        provision = lambda: compose_secrets.provision_db(root, **server)  # noqa: E731 (a CLI step, sync)
        assert await asyncio.to_thread(provision) == [db_roles.role_name(s) for s in db_roles.SERVICE_SCHEMAS]
        assert await asyncio.to_thread(provision)  # idempotent (a restarted db-bootstrap)

        for service in db_roles.SERVICE_SCHEMAS:
            # the service reads its DSN as compose gives it: a file named by LOOM_DATABASE_URL_FILE
            monkeypatch.delenv("LOOM_DATABASE_URL", raising=False)
            monkeypatch.setenv("LOOM_DATABASE_URL_FILE", str(root / service / "database_url"))
            conn = await asyncpg.connect(LoomSettings().database_url)
            try:
                assert await conn.fetchval("SELECT current_user") == db_roles.role_name(service)
                assert not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                await conn.execute(f"CREATE TABLE {service}.probe (x int)")  # its own schema
                other = next(s for s in db_roles.SERVICE_SCHEMAS if s != service)
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(f"CREATE TABLE {other}.intruder (x int)")
            finally:
                await conn.close()
        # a guessed password is refused (scram), so the files are the only way in
        dsn = (root / "tools" / "database_url").read_text().strip()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(dsn.replace(dsn.split(":")[2].split("@")[0], "guess"))
    finally:
        pg.stop()


def test_the_compose_commands_print_no_secret(tmp_path) -> None:
    """`loom-stack compose-secrets DIR` as compose's secrets-init runs it: names, never values."""
    from typer.testing import CliRunner

    from loom_common.devstack.cli import app

    result = CliRunner().invoke(app, ["compose-secrets", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "secrets ready for: gateway, orchestrator, rag, inference, tools" in result.output
    for path in (tmp_path / "s" / "generated").iterdir():
        assert path.read_text().strip() not in result.output
    assert (tmp_path / "s").stat().st_mode & 0o077 == 0
