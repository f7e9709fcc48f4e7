"""The app template catalogue: every shipped template loads strictly; an install fills the
placeholders, creates the datasets with their files, imports the app, and undoes the datasets
when a later step fails; the console routes gate, validate (the field named) and audit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loom_common.dsl import parse_graph
from loom_gateway.domain import dsl, templates
from loom_gateway.domain.errors import BadRequest, Conflict, NotFound


class FakeRag:
    """Records what an install asks of rag (the real one is exercised by the e2e test)."""

    def __init__(self, taken: set[str] = frozenset()) -> None:
        self.datasets: dict[str, str] = {}
        self.documents: list[tuple[str, str, bool]] = []
        self.deleted: list[str] = []
        self.taken = set(taken)

    async def create_dataset(self, t, name, description, retrieval_model, embedding_model, rule=None):
        if name in self.taken:
            raise Conflict("taken", code="dataset_name_duplicate")
        ds_id = f"ds-{len(self.datasets) + 1}"
        self.datasets[ds_id] = name
        return {"id": ds_id, "name": name}

    async def create_document(self, t, dataset_id, name, *, text=None, data=None, mime_type="", rule=None):
        self.documents.append((dataset_id, name, text is not None))
        return {"document": {"id": "doc"}, "batch": "doc"}

    async def delete_dataset(self, t, dataset_id):
        self.deleted.append(dataset_id)


class FakeApps:
    def __init__(self, fail: bool = False) -> None:
        self.fail, self.texts = fail, []

    async def import_dsl(self, tenant_id, account_id, text, name):
        if self.fail:
            raise BadRequest("node 'x': bad", field="data")
        self.texts.append(text)
        doc = dsl.parse_yaml(text)  # the real parser: the filled DSL must be valid
        return {"id": "app-1", "name": name or doc["app"]["name"], "mode": doc["app"]["mode"]}


APP = """version: loom/1
kind: app
app: {name: Tiny, mode: chatflow}
workflow:
  graph:
    version: "1"
    nodes:
      - {id: start, data: {type: start, variables: []}}
      - id: kb
        data: {type: knowledge-retrieval, query_variable_selector: [sys, query], dataset_ids: ["{{dataset:faq}}"]}
      - id: llm
        data:
          type: llm
          model: {name: "{{model:chat}}"}
          prompt_template: [{role: user, text: "{{env:GREETING}} {{#sys.query#}}"}]
      - {id: ans, data: {type: answer, answer: "{{#llm.text#}}"}}
    edges:
      - {source: start, target: kb}
      - {source: kb, target: llm}
      - {source: llm, target: ans}
"""


def _write(root: Path, app: str = APP, **meta) -> Path:
    folder = root / "tiny"
    (folder / "kb").mkdir(parents=True)
    (folder / "kb" / "faq.md").write_text("# FAQ\nReturns take 30 days.\n")
    (folder / "kb" / "manual.pdf").write_bytes(b"%PDF-1.4 not really")
    (folder / "app.yml").write_text(app)
    card = {"id": "tiny", "name": "Tiny", "description": "a test template", "mode": "chatflow",
            "datasets": [{"key": "faq", "name": "FAQ", "files": ["kb/faq.md", "kb/manual.pdf"]}],
            "env": [{"name": "GREETING", "default": "Hello"}], **meta}
    (folder / "template.yml").write_text(yaml.safe_dump(card))
    return folder


def test_every_shipped_template_loads_and_its_dsl_is_valid_once_filled() -> None:
    root = templates.default_root()
    shipped = [p for p in root.iterdir() if (p / "template.yml").is_file()]
    assert shipped, f"no templates under {root}"
    for folder in shipped:
        t = templates.load_template(folder)  # strict: raises TemplateError
        values = {("model", "chat"): "gemma3:270m"} | {("env", e.name): e.default for e in t.env}
        values |= {("dataset", d.key): f"ds-{d.key}" for d in t.datasets}
        doc = dsl.parse_yaml(templates.fill(t.app_file.read_text(), values))
        assert doc["app"]["mode"] == t.mode
        parse_graph(doc["workflow"]["graph"])
        assert (root.parent / t.doc).is_file(), f"{t.id}: {t.doc} is missing"


def test_a_broken_template_is_left_out_of_the_list(tmp_path) -> None:
    _write(tmp_path, app=APP.replace("{{dataset:faq}}", "{{dataset:nope}}"))
    with pytest.raises(templates.TemplateError, match="dataset:nope"):
        templates.load_template(tmp_path / "tiny")
    assert templates.load_catalogue(tmp_path) == {}
    escaping = tmp_path / "esc"
    _write(escaping, datasets=[{"key": "faq", "name": "x", "files": ["../../etc/passwd"]}])
    with pytest.raises(templates.TemplateError, match="not a file inside"):
        templates.load_template(escaping / "tiny")


async def test_install_fills_placeholders_and_creates_the_datasets(tmp_path) -> None:
    _write(tmp_path)
    rag, apps = FakeRag(taken={"FAQ"}), FakeApps()
    t = templates.Templates(tmp_path, rag, apps)
    [card] = await t.list()
    assert card["id"] == "tiny" and card["datasets"] == [{"key": "faq", "name": "FAQ", "files": 2}]
    out = await t.install("t1", "acc", "tiny", name=None, chat_model="scripted", embedding_model=None,
                          env={"GREETING": "Hi there"})
    assert out["app"]["id"] == "app-1" and out["datasets"] == {"faq": "ds-1"}
    assert rag.datasets == {"ds-1": "FAQ 2"}  # the name was taken: a second install's suffix
    assert rag.documents == [("ds-1", "faq.md", True), ("ds-1", "manual.pdf", False)]
    graph = dsl.parse_yaml(apps.texts[0])["workflow"]["graph"]
    nodes = {n["id"]: n["data"] for n in graph["nodes"]}
    assert nodes["kb"]["dataset_ids"] == ["ds-1"] and nodes["llm"]["model"]["name"] == "scripted"
    assert nodes["llm"]["prompt_template"][0]["text"].startswith("Hi there ")


async def test_install_errors_name_the_field_and_undo_the_datasets(tmp_path) -> None:
    _write(tmp_path)
    rag = FakeRag()
    t = templates.Templates(tmp_path, rag, FakeApps(fail=True))
    with pytest.raises(NotFound):
        await t.install("t1", None, "nope", name=None, chat_model="m", embedding_model=None, env={})
    for env, field in (({"NOPE": "x"}, "env.NOPE"), ({"GREETING": 'a"\nb: c'}, "env.GREETING")):
        with pytest.raises(BadRequest) as err:
            await t.install("t1", None, "tiny", name=None, chat_model="m", embedding_model=None, env=env)
        assert err.value.field == field
    assert rag.datasets == {}  # refused before anything was made
    with pytest.raises(BadRequest):
        await t.install("t1", None, "tiny", name=None, chat_model="m", embedding_model=None, env={})
    assert rag.deleted == list(rag.datasets) == ["ds-1"]


@pytest.mark.integration
async def test_console_routes_list_install_and_audit(gateway, admin, tmp_path) -> None:
    _write(tmp_path)
    g = gateway.rt.http.state.gw
    g.settings.templates_dir = tmp_path
    g.rag = FakeRag()  # no rag service in this fixture; the e2e test installs on the real stack
    c, h = gateway.client, admin.headers
    r = await c.get(admin.ws("/templates"), headers=h)
    assert r.status_code == 200 and [t["id"] for t in r.json()["data"]] == ["tiny"]
    r = await c.post(admin.ws("/templates/tiny/install"), json={"name": "My tiny", "env": {"NOPE": "1"}}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "env.NOPE"
    r = await c.post(admin.ws("/templates/Bad_Id/install"), headers=h)
    assert r.status_code == 400 and r.json()["field"] == "template_id"
    r = await c.post(admin.ws("/templates/nope/install"), headers=h)
    assert r.status_code == 404 and r.json()["code"] == "template_not_exists"
    r = await c.post(admin.ws("/templates/tiny/install"), json={"name": "My tiny"}, headers=h)
    assert r.status_code == 201, r.text
    app_id = r.json()["app"]["id"]
    app = (await c.get(admin.ws(f"/apps/{app_id}"), headers=h)).json()
    assert app["name"] == "My tiny" and app["mode"] == "chatflow"
    draft = (await c.get(admin.ws(f"/apps/{app_id}/draft"), headers=h)).json()["dsl"]
    kb = next(n for n in draft["workflow"]["graph"]["nodes"] if n["id"] == "kb")
    assert kb["data"]["dataset_ids"] == [r.json()["datasets"]["faq"]]
    logs = (await c.get(admin.ws("/audit-logs"), params={"action": "templates.install"}, headers=h)).json()["data"]
    assert len(logs) == 1 and logs[0]["detail"]["app_id"] == app_id


class FakeConnections:
    """Records the SQL connections an install registers (the real tools service: the data-analysis e2e test)."""

    def __init__(self, existing: set[str] = frozenset(), missing: set[str] = frozenset()) -> None:
        self.added: list[tuple[str, str, str]] = []
        self.deleted: list[str] = []
        self.existing, self.missing = set(existing), set(missing)

    async def add_sqlite(self, tenant_id, name, path, description):
        if path in self.missing:
            raise BadRequest(f"invalid_arguments: argument 'path': no SQLite file at /x/{path}")
        if name in self.existing:
            return False
        self.added.append((tenant_id, name, path))
        return True

    async def delete(self, tenant_id, name):
        self.deleted.append(name)


SHOP = [{"name": "shop", "driver": "sqlite", "path": "shop.sqlite", "description": "sample"}]


async def test_install_registers_the_template_connections_and_undoes_them(tmp_path) -> None:
    _write(tmp_path, connections=SHOP)
    conns = FakeConnections()
    t = templates.Templates(tmp_path, FakeRag(), FakeApps(), conns)
    [card] = await t.list()
    assert card["connections"] == [{"name": "shop", "driver": "sqlite", "path": "shop.sqlite"}]
    await t.install("t1", None, "tiny", name=None, chat_model="m", embedding_model=None, env={})
    assert conns.added == [("t1", "shop", "shop.sqlite")]
    # A workspace that has a connection of that name keeps it (it may be the operator's own), and
    # a failed install does not delete what it did not make.
    kept = FakeConnections(existing={"shop"})
    t = templates.Templates(tmp_path, FakeRag(), FakeApps(fail=True), kept)
    with pytest.raises(BadRequest):
        await t.install("t1", None, "tiny", name=None, chat_model="m", embedding_model=None, env={})
    assert kept.added == [] and kept.deleted == []
    # One it made is deleted again when a later step fails.
    made = FakeConnections()
    t = templates.Templates(tmp_path, FakeRag(), FakeApps(fail=True), made)
    with pytest.raises(BadRequest):
        await t.install("t1", None, "tiny", name=None, chat_model="m", embedding_model=None, env={})
    assert made.deleted == ["shop"]
    # The sample database was never written where the tools service looks: the field is named,
    # and nothing else was made.
    rag = FakeRag()
    t = templates.Templates(tmp_path, rag, FakeApps(), FakeConnections(missing={"shop.sqlite"}))
    with pytest.raises(BadRequest) as err:
        await t.install("t1", None, "tiny", name=None, chat_model="m", embedding_model=None, env={})
    assert err.value.field == "connections.shop" and "no SQLite file" in err.value.message and rag.datasets == {}


@pytest.mark.parametrize("conn", [
    {"name": "shop", "path": "/etc/passwd"}, {"name": "shop", "path": "../x.sqlite"},
    {"name": "Shop!", "path": "x.sqlite"}, {"name": "pg", "driver": "postgresql", "path": "x"},
])
def test_a_template_connection_must_be_a_relative_sqlite_file(tmp_path, conn) -> None:
    _write(tmp_path, connections=[conn])
    with pytest.raises(templates.TemplateError, match="connections"):
        templates.load_template(tmp_path / "tiny")
