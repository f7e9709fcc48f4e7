"""NATS users and what each may publish and subscribe: the nats-server config of the embedded
stack (and the table the Kubernetes NATS config mirrors).

Each service connects as its own user (`LOOM_NATS_USER` / `LOOM_NATS_PASSWORD`) and may publish
only the subjects it owns in `bus.py`'s table; `admin` (operators, tests) may do anything.

    user          publishes                                   subscribes (besides _INBOX.>)
    gateway       runs.requested, runs.cancel.*, dlq.*        run.*.events (live SSE feed)
    orchestrator  run.*.events, runs.finished, dlq.*,         runs.cancel.*
                  runs.requested (a human-input form's timeout
                  resumes its paused run)
    rag           documents.ingest, document.*.events, dlq.*  -
    inference     -                                           -
    tools         -                                           -

Every service also uses the JetStream API (streams declared at start-up, consumers, acks), but
none may delete or purge a stream or its messages. Passwords are generated into
`$LOOM_HOME/secrets/nats-<user>` (mode 0600); the config that names them is 0600 too.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from loom_common import bus, secret_files

ADMIN = "admin"

_JS_API = ["$JS.API.>", "$JS.ACK.>"]
_JS_FORBIDDEN = ["$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>",
                 "$JS.API.ACCOUNT.>", "$JS.API.META.>", "$JS.API.SERVER.>"]
_INBOX = "_INBOX.>"

# user -> (subjects it publishes, subjects it subscribes to), from bus.py's table.
PERMISSIONS: dict[str, tuple[list[str], list[str]]] = {
    "gateway": ([bus.RUNS_REQUESTED, bus.RUN_CANCEL_ALL, bus.dead_letter("*")], [bus.run_events("*")]),
    "orchestrator": ([bus.run_events("*"), bus.RUNS_FINISHED, bus.dead_letter("*"), bus.RUNS_REQUESTED],
                     [bus.RUN_CANCEL_ALL]),
    "rag": ([bus.DOCUMENTS_INGEST, bus.document_events("*"), bus.dead_letter("*")], []),
    "inference": ([], []),
    "tools": ([], []),
}


@dataclass(frozen=True)
class NatsUsers:
    passwords: dict[str, str]  # user -> password, admin included

    def url(self, port: int, user: str = ADMIN) -> str:
        return f"nats://{user}:{self.passwords[user]}@127.0.0.1:{port}"


def load_users(secrets_dir: Path) -> NatsUsers:
    """Every user's password, generated on first use."""
    secrets_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir.chmod(0o700)
    passwords = {}
    for user in (ADMIN, *PERMISSIONS):
        passwords[user] = secret_files.read_or_create(
            secrets_dir / f"nats-{user}", lambda: secrets.token_urlsafe(24).encode()).decode().strip()
    return NatsUsers(passwords)


def _user_entry(user: str, password: str) -> dict:
    if user == ADMIN:
        return {"user": user, "password": password}
    publish, subscribe = PERMISSIONS[user]
    return {"user": user, "password": password, "permissions": {
        "publish": {"allow": [*publish, *_JS_API], "deny": _JS_FORBIDDEN},
        "subscribe": {"allow": [*subscribe, _INBOX]},
    }}


def render_config(*, port: int, monitor_port: int, store_dir: Path, users: NatsUsers,
                  host: str = "127.0.0.1") -> str:
    """nats-server's config (its format accepts JSON): loopback only, the monitor too, unless a
    container's network is the boundary (compose: host 0.0.0.0, nothing published)."""
    config = {
        "listen": f"{host}:{port}",
        # The monitor has no authentication in nats-server: it listens on loopback only.
        "http": f"{host}:{monitor_port}",
        "jetstream": {"store_dir": str(store_dir)},
        "authorization": {"users": [_user_entry(u, pw) for u, pw in users.passwords.items()]},
    }
    return json.dumps(config, indent=2)


def write_config(path: Path, **kw) -> Path:
    """Write the config with mode 0600 (it holds every user's password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_text(render_config(**kw))
    return path


def password_env(user: str) -> str:
    """The environment variable the Kubernetes NATS pods read a user's password from."""
    return f"LOOM_NATS_PASSWORD_{user.upper()}"


def kubernetes_authorization() -> str:
    """The `authorization` block of deploy/k8s's nats.conf: the same users and permissions, each
    password a `$VARIABLE` nats-server resolves from the pod's environment (Secret loom-<user>)."""
    lines = ["authorization {", "  users: ["]
    for user in PERMISSIONS:
        entry = _user_entry(user, "")
        perms = json.dumps(entry["permissions"], separators=(", ", ": "))
        lines.append(f"    {{user: {user}, password: ${password_env(user)}, permissions: {perms}}}")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"
