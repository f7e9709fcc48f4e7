"""Who may do what: THE permission matrix of the gateway (docs/rbac.md is generated from it).

A caller is a `Principal`: a console account acting in one workspace with a member role, or an
API key (app key `app-…`, dataset key `dataset-…`), which acts with a pseudo-role of its kind.
Every route declares exactly one `Perm`; `allowed(role, perm)` answers from `MATRIX`, so the
RBAC test can walk every role over every route from this one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    EDITOR = "editor"
    NORMAL = "normal"
    DATASET_OPERATOR = "dataset_operator"
    # Pseudo-roles of API keys.
    APP_KEY = "app_key"
    DATASET_KEY = "dataset_key"


MEMBER_ROLES = (Role.OWNER, Role.ADMIN, Role.EDITOR, Role.NORMAL, Role.DATASET_OPERATOR)
# Roles an owner/admin may hand out through invitations or role changes (one owner per workspace).
ASSIGNABLE_ROLES = (Role.ADMIN, Role.EDITOR, Role.NORMAL, Role.DATASET_OPERATOR)


class Perm(StrEnum):
    ACCOUNT = "account"                    # any signed-in account: own profile, own workspaces
    WORKSPACE_READ = "workspace.read"
    WORKSPACE_MANAGE = "workspace.manage"  # rename, limits
    WORKSPACE_DELETE = "workspace.delete"
    MEMBERS_READ = "members.read"
    MEMBERS_MANAGE = "members.manage"      # invite, change role, remove
    APPS_READ = "apps.read"
    APPS_WRITE = "apps.write"              # create, edit draft, import, publish, delete
    APP_KEYS = "app_keys.manage"
    DATASET_KEYS = "dataset_keys.manage"
    DATASETS_READ = "datasets.read"
    DATASETS_WRITE = "datasets.write"
    RUNS_READ = "runs.read"                # console: an app's runs and their events
    AUDIT_READ = "audit.read"
    AUDIT_MANAGE = "audit.manage"          # retention
    APP_RUN = "app.run"                    # service API: chat, completion, workflow, files, feedback
    MODELS_USE = "models.use"              # OpenAI-compatible API


_O, _A, _E, _N, _D = Role.OWNER, Role.ADMIN, Role.EDITOR, Role.NORMAL, Role.DATASET_OPERATOR
_AK, _DK = Role.APP_KEY, Role.DATASET_KEY

MATRIX: dict[Perm, frozenset[Role]] = {
    Perm.ACCOUNT: frozenset({_O, _A, _E, _N, _D}),
    Perm.WORKSPACE_READ: frozenset({_O, _A, _E, _N, _D}),
    Perm.WORKSPACE_MANAGE: frozenset({_O, _A}),
    Perm.WORKSPACE_DELETE: frozenset({_O}),
    Perm.MEMBERS_READ: frozenset({_O, _A, _E, _N, _D}),
    Perm.MEMBERS_MANAGE: frozenset({_O, _A}),
    Perm.APPS_READ: frozenset({_O, _A, _E, _N}),
    Perm.APPS_WRITE: frozenset({_O, _A, _E}),
    Perm.APP_KEYS: frozenset({_O, _A, _E}),
    Perm.DATASET_KEYS: frozenset({_O, _A, _D}),
    Perm.DATASETS_READ: frozenset({_O, _A, _E, _D, _DK}),
    Perm.DATASETS_WRITE: frozenset({_O, _A, _E, _D, _DK}),
    Perm.RUNS_READ: frozenset({_O, _A, _E}),
    Perm.AUDIT_READ: frozenset({_O, _A}),
    Perm.AUDIT_MANAGE: frozenset({_O}),
    Perm.APP_RUN: frozenset({_AK}),
    Perm.MODELS_USE: frozenset({_AK}),
}


def allowed(role: Role, perm: Perm) -> bool:
    return role in MATRIX[perm]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, always bound to one workspace (tenant)."""

    kind: str                     # account | app_key | dataset_key
    tenant_id: str
    role: Role
    account_id: str | None = None
    key_id: str | None = None
    app_id: str | None = None     # app keys only
    app_version: int | None = None  # app keys: the app's published version when the key was admitted
    token_quota: bool = False     # keys: a token quota (the key's or its workspace's) applies: reserve

    @property
    def actor_id(self) -> str | None:
        return self.account_id or self.key_id


def matrix_markdown() -> str:
    """The matrix as a Markdown table (docs/rbac.md embeds this output)."""
    roles = list(Role)
    lines = ["| permission | " + " | ".join(r.value for r in roles) + " |",
             "|---|" + "---|" * len(roles)]
    for perm in Perm:
        cells = ["yes" if allowed(r, perm) else "" for r in roles]
        lines.append(f"| `{perm.value}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
