"""The seed's deployment names (DB_*, REDIS_*) as aliases of Loom's own settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from loom_common.settings import DEFAULT_DATABASE_URL, LoomSettings, ServiceSettings, external_database_url

SEED = ("DB_HOST", "DB_PORT", "DB_USERNAME", "DB_PASSWORD", "DB_DATABASE",
        "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD")
LOOM = ("LOOM_DATABASE_URL", "DATABASE_URL", "LOOM_REDIS_URL", "REDIS_URL", "LOOM_NATS_PASSWORD",
        "LOOM_DATABASE_URL_FILE", "LOOM_NATS_PASSWORD_FILE", "LOOM_REDIS_URL_FILE")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in SEED + LOOM:
        monkeypatch.delenv(name, raising=False)


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_DEMO_", extra="ignore", populate_by_name=True)


def test_db_parts_make_the_database_url_for_every_service(monkeypatch) -> None:
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("DB_PORT", "6432")
    monkeypatch.setenv("DB_USERNAME", "loom_gateway")
    monkeypatch.setenv("DB_PASSWORD", "p@ss/w:rd")  # quoted into the URL
    monkeypatch.setenv("DB_DATABASE", "loomdb")
    s = DemoSettings()  # a service's own prefix does not hide the seed's names
    assert s.database_url == "postgresql://loom_gateway:p%40ss%2Fw%3Ard@db.internal:6432/loomdb"
    assert external_database_url() == s.database_url


def test_db_parts_fill_in_the_defaults(monkeypatch) -> None:
    monkeypatch.setenv("DB_HOST", "db")
    assert LoomSettings().database_url == "postgresql://postgres@db:5432/loom"
    monkeypatch.setenv("DB_HOST", "::1")
    assert LoomSettings().database_url == "postgresql://postgres@[::1]:5432/loom"


def test_without_any_name_the_default_database_and_no_redis() -> None:
    s = LoomSettings()
    assert s.database_url == DEFAULT_DATABASE_URL and s.redis_url is None
    assert external_database_url() is None  # `make up` embeds its own Postgres


def test_loom_names_win_whole_over_the_seed_parts(monkeypatch) -> None:
    monkeypatch.setenv("DB_HOST", "seed-db")
    monkeypatch.setenv("DB_PASSWORD", "seed-secret")
    monkeypatch.setenv("REDIS_HOST", "seed-redis")
    monkeypatch.setenv("REDIS_PASSWORD", "seed-secret")
    monkeypatch.setenv("LOOM_DATABASE_URL", "postgresql://loom_rag:own@pg:5432/loom")
    monkeypatch.setenv("LOOM_REDIS_URL", "rediss://redis.internal:6380/2")
    s = LoomSettings()
    # no part of the seed's names is mixed into Loom's own URL
    assert s.database_url == "postgresql://loom_rag:own@pg:5432/loom"
    assert s.redis_url == "rediss://redis.internal:6380/2"
    assert external_database_url() == "postgresql://loom_rag:own@pg:5432/loom"
    # an explicit value in code wins too
    assert LoomSettings(database_url="postgresql://x@y/z").database_url == "postgresql://x@y/z"


def test_redis_parts_make_the_redis_url(monkeypatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis")
    assert LoomSettings().redis_url == "redis://redis:6379/0"
    monkeypatch.setenv("REDIS_PORT", "7000")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cr@t")
    assert LoomSettings().redis_url == "redis://:s3cr%40t@redis:7000/0"


def test_redis_port_or_password_without_a_host_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "x")
    with pytest.raises(ValidationError, match="REDIS_HOST"):
        LoomSettings()


def test_bad_port_is_refused_naming_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("DB_PORT", "70000")
    with pytest.raises(ValidationError, match="DB_PORT"):
        LoomSettings()


def test_passwords_never_appear_in_repr_or_dumps(monkeypatch) -> None:
    monkeypatch.setenv("DB_HOST", "db")
    monkeypatch.setenv("DB_PASSWORD", "db-pass-123")
    monkeypatch.setenv("REDIS_HOST", "redis")
    monkeypatch.setenv("REDIS_PASSWORD", "redis-pass-456")
    s = DemoSettings()
    assert "db-pass-123" in s.database_url and "redis-pass-456" in (s.redis_url or "")  # used...
    shown = repr(s) + str(s) + s.model_dump_json(exclude={"database_url", "redis_url"})
    for secret in ("db-pass-123", "redis-pass-456"):  # ...but never shown
        assert secret not in shown


def test_secrets_are_read_from_files_when_the_variable_is_unset(monkeypatch, tmp_path) -> None:
    (tmp_path / "database_url").write_text("postgresql://loom_tools:pw@postgres:5432/loom\n")
    (tmp_path / "nats_password").write_text("nats-pw\n")
    monkeypatch.setenv("LOOM_DATABASE_URL_FILE", str(tmp_path / "database_url"))
    monkeypatch.setenv("LOOM_NATS_PASSWORD_FILE", str(tmp_path / "nats_password"))
    monkeypatch.setenv("LOOM_REDIS_URL_FILE", "")  # empty: unset
    monkeypatch.setenv("DB_HOST", "seed-db")  # the file is Loom's own name: it wins
    s = DemoSettings()
    assert s.database_url == "postgresql://loom_tools:pw@postgres:5432/loom"
    assert s.nats_password == "nats-pw" and s.redis_url is None
    assert "nats-pw" not in repr(s) and ":pw@" not in repr(s)
    monkeypatch.setenv("LOOM_DATABASE_URL", "postgresql://x@y/z")  # the variable beats its file
    assert DemoSettings().database_url == "postgresql://x@y/z"


def test_a_missing_or_empty_secret_file_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LOOM_NATS_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValidationError, match="LOOM_NATS_PASSWORD_FILE"):
        LoomSettings()
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("LOOM_NATS_PASSWORD_FILE", str(tmp_path / "empty"))
    with pytest.raises(ValidationError, match="is empty"):
        LoomSettings()
