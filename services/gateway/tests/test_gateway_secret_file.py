"""The console's JWT signing secret, generated into LOOM_HOME on first start, is never readable
by another user, not even for a moment: the file is born with mode 0600 (os.open with the mode,
no chmod afterwards) and appears under its name only once written."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from loom_gateway.app import jwt_secret
from loom_gateway.settings import GatewaySettings


def test_gateway_jwt_secret_file_created_0600_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOM_HOME", str(tmp_path))
    created: list[tuple[int, int]] = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT:
            created.append((flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    def no_chmod(*args, **kwargs):
        pytest.fail("the secret's mode must be set when it is created, not changed afterwards")

    monkeypatch.setattr(os, "open", spy)
    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", no_chmod)
    old_umask = os.umask(0)  # a permissive umask: only the mode given to os.open protects the file
    try:
        secret = jwt_secret(GatewaySettings())
    finally:
        os.umask(old_umask)

    path = tmp_path / "gateway" / "jwt.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert created and all(mode == 0o600 and flags & os.O_EXCL for flags, mode in created)
    assert len(secret) >= 48 and path.read_text().strip() == secret
    assert [p.name for p in path.parent.iterdir()] == ["jwt.secret"]  # no temporary file left behind
    assert jwt_secret(GatewaySettings()) == secret  # reused, not regenerated


def test_gateway_jwt_secret_concurrent_first_starts_agree(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOM_HOME", str(tmp_path))
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: jwt_secret(GatewaySettings()), range(16)))
    assert len(secrets) == 1
