"""The app template catalogue: ready applications a workspace installs in one call.

A template is a folder `templates/<id>/` (docs/templates/README.md describes the format):

    template.yml   id, name, description, mode, app (the DSL file), datasets, connections, tools, env
    app.yml        the app's DSL, as `POST /apps/import` takes it (Loom or Dify format), with
                   placeholders: {{dataset:<key>}} (the id of the dataset the install created),
                   {{model:chat}} (the model the install names, else the workspace's chat model)
                   and {{env:<NAME>}} (a value the install sends, else the template's default)
    <files>        knowledge documents the datasets are made of

Installing registers the template's SQL connections with the tools service (a sample SQLite
database under the tools service's SQLite roots; one the workspace has already is kept),
creates each dataset and adds its files (rag indexes them in the background), then imports the
DSL with the placeholders filled in. If a step fails, the connections and datasets made so far
are deleted again, so a failed install leaves nothing half-made behind.

The catalogue is read from disk on each call (a few small files): a template added to the
folder is listed without a restart. The folder is `LOOM_GATEWAY_TEMPLATES_DIR`, by default the
repository's `templates/` (found from this package in a source checkout).
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from loom_common import untrusted_yaml
from loom_common.logging import get_logger
from loom_gateway.domain.errors import ApiError, BadRequest, Conflict, NotFound

log = get_logger(__name__)

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ENV_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,62}$")
CONNECTION_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SQLITE_PATH_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_./-]{0,199}$")
PLACEHOLDER_RE = re.compile(r"\{\{(dataset|model|env):([A-Za-z0-9_-]{1,63})\}\}")
MAX_FILE_BYTES = 5 * 1024 * 1024   # one shipped knowledge document or DSL file
MAX_ENV_VALUE = 2000
TEXT_SUFFIXES = (".md", ".txt", ".csv", ".json", ".html")


class TemplateError(Exception):
    """A template folder that does not follow the format (an operator's mistake, not a user's)."""


@dataclass(frozen=True)
class DatasetSpec:
    key: str
    name: str
    description: str
    files: tuple[Path, ...]
    process_rule: dict[str, Any] | None = None


@dataclass(frozen=True)
class ConnectionSpec:
    """A SQL connection the install registers: a SQLite file, relative to the tools service's
    first SQLite root (LOOM_TOOLS_SQLITE_ROOTS), which the tools service resolves and checks."""
    name: str          # the tools <name>.query and <name>.schema
    path: str
    description: str = ""
    driver: str = "sqlite"


@dataclass(frozen=True)
class EnvSpec:
    name: str
    default: str
    description: str = ""


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    description: str
    mode: str
    app_file: Path
    datasets: tuple[DatasetSpec, ...] = ()
    connections: tuple[ConnectionSpec, ...] = ()
    tools: tuple[str, ...] = ()      # the built-in tools the app calls (listed for the reader)
    env: tuple[EnvSpec, ...] = ()
    doc: str = ""                    # docs/templates/<id>.md, relative to the repository
    tags: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description, "mode": self.mode,
                "tags": list(self.tags), "datasets": [{"key": d.key, "name": d.name, "files": len(d.files)}
                                                      for d in self.datasets],
                "connections": [{"name": c.name, "driver": c.driver, "path": c.path} for c in self.connections],
                "tools": list(self.tools), "doc": self.doc,
                "env": [{"name": e.name, "default": e.default, "description": e.description} for e in self.env]}


def default_root() -> Path:
    """The repository's templates/ (this file is services/gateway/src/loom_gateway/domain/...)."""
    return Path(__file__).resolve().parents[5] / "templates"


def _inside(root: Path, rel: str, what: str) -> Path:
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise TemplateError(f"{what}: {rel!r} is not a file inside {root}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise TemplateError(f"{what}: {rel!r} is larger than {MAX_FILE_BYTES} bytes")
    return path


def _str(meta: dict, key: str, where: str, default: str | None = None) -> str:
    value = meta.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise TemplateError(f"{where}: {key} must be a non-empty string")
    return value


def load_template(folder: Path) -> Template:
    where = str(folder / "template.yml")
    try:
        meta = untrusted_yaml.load((folder / "template.yml").read_text())
    except Exception as exc:  # unreadable or not YAML: name the file
        raise TemplateError(f"{where}: {exc}") from exc
    if not isinstance(meta, dict):
        raise TemplateError(f"{where}: must be a mapping")
    tid = _str(meta, "id", where)
    if not ID_RE.match(tid) or tid != folder.name:
        raise TemplateError(f"{where}: id {tid!r} must match {ID_RE.pattern} and the folder's name")
    datasets = []
    for i, d in enumerate(meta.get("datasets") or []):
        at = f"{where}: datasets[{i}]"
        if not isinstance(d, dict) or not isinstance(d.get("files"), list) or not d["files"]:
            raise TemplateError(f"{at}: needs key, name and a non-empty files list")
        rule = d.get("process_rule")
        if rule is not None and not isinstance(rule, dict):
            raise TemplateError(f"{at}: process_rule must be a mapping")
        datasets.append(DatasetSpec(_str(d, "key", at), _str(d, "name", at)[:40], _str(d, "description", at, ""),
                                    tuple(_inside(folder, f, at) for f in d["files"]), rule))
    connections = []
    for i, c in enumerate(meta.get("connections") or []):
        at = f"{where}: connections[{i}]"
        # SQLite only: a PostgreSQL DSN carries a credential, which has no place in a template.
        if not isinstance(c, dict) or c.get("driver", "sqlite") != "sqlite":
            raise TemplateError(f"{at}: a mapping with name and path (driver sqlite)")
        name, path = str(c.get("name", "")), str(c.get("path", ""))
        if not CONNECTION_RE.match(name) or not SQLITE_PATH_RE.match(path) or ".." in path.split("/"):
            raise TemplateError(f"{at}: name must match {CONNECTION_RE.pattern}, path be relative "
                                f"({SQLITE_PATH_RE.pattern}, no '..')")
        connections.append(ConnectionSpec(name, path, str(c.get("description", ""))))
    env = []
    for i, e in enumerate(meta.get("env") or []):
        at = f"{where}: env[{i}]"
        if not isinstance(e, dict) or not ENV_RE.match(str(e.get("name", ""))):
            raise TemplateError(f"{at}: name must match {ENV_RE.pattern}")
        env.append(EnvSpec(e["name"], str(e.get("default", "")), str(e.get("description", ""))))
    tools = meta.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        raise TemplateError(f"{where}: tools must be a list of tool names")
    t = Template(id=tid, name=_str(meta, "name", where), description=_str(meta, "description", where, ""),
                 mode=_str(meta, "mode", where), app_file=_inside(folder, _str(meta, "app", where, "app.yml"), where),
                 datasets=tuple(datasets), connections=tuple(connections), tools=tuple(tools), env=tuple(env),
                 doc=f"docs/templates/{tid}.md", tags=tuple(str(x) for x in meta.get("tags") or []))
    _check_placeholders(t, t.app_file.read_text())
    return t


def _check_placeholders(t: Template, text: str) -> None:
    keys, names = {d.key for d in t.datasets}, {e.name for e in t.env}
    for kind, key in PLACEHOLDER_RE.findall(text):
        known = {"dataset": keys, "env": names, "model": {"chat"}}[kind]
        if key not in known:
            raise TemplateError(f"{t.app_file}: placeholder {{{{{kind}:{key}}}}} names nothing the template declares")


def load_catalogue(root: Path) -> dict[str, Template]:
    """Every valid template under `root`; an invalid one is logged and left out (not a 500 for users)."""
    found: dict[str, Template] = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if (folder / "template.yml").is_file():
            try:
                t = load_template(folder)
            except TemplateError as exc:
                log.warning("template left out", folder=str(folder), error=str(exc))
                continue
            found[t.id] = t
    return found


def fill(text: str, values: dict[tuple[str, str], str]) -> str:
    """The DSL text with every placeholder replaced (values are YAML-safe: ids, names, checked env)."""
    return PLACEHOLDER_RE.sub(lambda m: values[(m.group(1), m.group(2))], text)


class Rag(Protocol):
    async def create_dataset(self, t: str, name: str, description: str, retrieval_model: dict | None,
                             embedding_model: str | None, rule: dict | None = None) -> dict: ...
    async def create_document(self, t: str, dataset_id: str, name: str, *, text: str | None = None,
                              data: bytes | None = None, mime_type: str = "", rule: dict | None = None) -> dict: ...
    async def delete_dataset(self, t: str, dataset_id: str) -> None: ...


class Connections(Protocol):
    async def add_sqlite(self, tenant_id: str, name: str, path: str, description: str) -> bool: ...
    async def delete(self, tenant_id: str, name: str) -> None: ...


class AppImporter(Protocol):
    async def import_dsl(self, tenant_id: str, account_id: str | None, text: str, name: str | None) -> dict: ...


def _env_values(t: Template, given: dict[str, str]) -> dict[str, str]:
    declared = {e.name: e for e in t.env}
    for name, value in given.items():
        if name not in declared:
            raise BadRequest(f"template {t.id!r} has no setting {name!r}", field=f"env.{name}")
        # A value lands inside the YAML text: one line, no quotes or braces that could change its shape.
        if len(value) > MAX_ENV_VALUE or re.search(r"[\n\r\"'{}\\]", value):
            raise BadRequest(f"env.{name}: at most {MAX_ENV_VALUE} characters, one line, no quotes, braces or "
                             "backslashes", field=f"env.{name}")
    return {n: given.get(n, e.default) for n, e in declared.items()}


class Templates:
    def __init__(self, root: Path, rag: Rag, apps: AppImporter, connections: Connections | None = None):
        self.root, self.rag, self.apps, self.connections = root, rag, apps, connections

    async def catalogue(self) -> dict[str, Template]:
        return await asyncio.to_thread(load_catalogue, self.root)

    async def list(self) -> list[dict[str, Any]]:
        return [t.summary() for t in (await self.catalogue()).values()]

    async def install(self, tenant_id: str, account_id: str | None, template_id: str, *, name: str | None,
                      chat_model: str, embedding_model: str | None, env: dict[str, str]) -> dict[str, Any]:
        t = (await self.catalogue()).get(template_id)
        if t is None:
            raise NotFound(f"No template {template_id!r}.", code="template_not_exists")
        values: dict[tuple[str, str], str] = {("model", "chat"): chat_model}
        values |= {("env", k): v for k, v in _env_values(t, env).items()}
        created: list[str] = []
        connected: list[str] = []
        try:
            for c in t.connections:
                if await self._connect(tenant_id, c):
                    connected.append(c.name)
            for d in t.datasets:
                ds = await self._create_dataset(tenant_id, d, embedding_model)
                created.append(ds["id"])
                values[("dataset", d.key)] = ds["id"]
                for path in d.files:
                    await self._add_file(tenant_id, ds["id"], path)
            text = fill(await asyncio.to_thread(t.app_file.read_text), values)
            app = await self.apps.import_dsl(tenant_id, account_id, text, name)
        except (ApiError, OSError):
            for dataset_id in created:  # best effort: the error that stopped the install is the answer
                with contextlib.suppress(Exception):
                    await self.rag.delete_dataset(tenant_id, dataset_id)
            for name in connected:
                with contextlib.suppress(Exception):
                    await self.connections.delete(tenant_id, name)
            raise
        return {"template": t.id, "app": app, "datasets": {d.key: values[("dataset", d.key)] for d in t.datasets}}

    async def _connect(self, tenant_id: str, c: ConnectionSpec) -> bool:
        """Register the connection; False when the workspace has one of that name (kept as it is)."""
        if self.connections is None:
            raise ApiError("this gateway cannot reach the tools service to register SQL connections",
                           code="tools_unavailable", status=503)
        try:
            return await self.connections.add_sqlite(tenant_id, c.name, c.path, c.description)
        except BadRequest as exc:  # e.g. the sample database was never written where the tools service looks
            raise BadRequest(f"connection {c.name!r}: {exc.message}", field=f"connections.{c.name}") from exc

    async def _create_dataset(self, tenant_id: str, d: DatasetSpec, embedding_model: str | None) -> dict:
        # Dataset names are unique in a workspace: a second install of the template gets "<name> 2".
        for n in range(1, 21):
            name = d.name if n == 1 else f"{d.name[:36]} {n}"
            try:
                return await self.rag.create_dataset(tenant_id, name, d.description, None, embedding_model,
                                                     d.process_rule)
            except Conflict:
                continue
        raise Conflict(f"datasets named {d.name!r} 1 to 20 exist already", code="dataset_name_duplicate")

    async def _add_file(self, tenant_id: str, dataset_id: str, path: Path) -> None:
        data = await asyncio.to_thread(path.read_bytes)
        if path.suffix in TEXT_SUFFIXES:
            await self.rag.create_document(tenant_id, dataset_id, path.name, text=data.decode())
        else:
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            await self.rag.create_document(tenant_id, dataset_id, path.name, data=data, mime_type=mime)
