"""A streaming replica of an embedded Postgres, made the way an operator makes one: the primary
lets its superuser connect for replication, `pg_basebackup -R` copies it (and writes
`primary_conninfo` and `standby.signal`), and the copy starts as a hot standby.

Used by the read/write split's tests (loom_common.read_replica) and to try the split locally;
docs/operations.md has the same steps for a real deployment.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from loom_common.devstack import infra

# Replication connections match no `all` database line of pg_hba.conf: they need their own.
REPLICATION_HBA = "host    replication   all   127.0.0.1/32   scram-sha-256\n"


def _system_user() -> str | None:
    return infra.PG_SYSTEM_USER if os.geteuid() == 0 else None


def allow_replication(primary: infra.EmbeddedPostgres) -> None:
    """Let the primary's superuser connect for replication over loopback (with its password)."""
    hba = primary.data_dir / "pg_hba.conf"
    if REPLICATION_HBA not in hba.read_text():
        with hba.open("a") as f:
            f.write(REPLICATION_HBA)
    subprocess.run([infra.pg_bin("pg_ctl"), "reload", "-D", str(primary.data_dir)], check=True,
                   capture_output=True, user=_system_user())


def start_replica(primary: infra.EmbeddedPostgres, data_dir: Path) -> infra.EmbeddedPostgres:
    """A hot standby of `primary` streaming from it, in `data_dir` (a sibling of the primary's,
    so both read the same generated superuser password); call `allow_replication` first."""
    user = _system_user()
    data_dir.mkdir(mode=0o700, parents=True)
    if user:
        import pwd

        pw = pwd.getpwnam(user)
        os.chown(data_dir, pw.pw_uid, pw.pw_gid)
    env = {**os.environ, "PGPASSWORD": infra.superuser_password(primary.data_dir)}
    # -R: primary_conninfo (with the password it connected with) + standby.signal; -X stream:
    # the WAL written during the copy comes along, so the copy starts consistent.
    subprocess.run([infra.pg_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                    "-D", str(data_dir), "-R", "-X", "stream", "-c", "fast"],
                   check=True, capture_output=True, env=env, user=user)
    return infra.EmbeddedPostgres(data_dir).start()
