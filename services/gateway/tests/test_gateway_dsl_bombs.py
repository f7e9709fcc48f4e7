"""DSL import under attack (issue 18, point 5): a 560-byte YAML alias bomb once became a
6.6 MiB stored draft. Aliases are now refused before any node is built, and a DSL's text is
capped, each with a 400 naming the field and nothing stored."""

from __future__ import annotations

import pytest

from loom_gateway.domain.dsl import MAX_DSL_CHARS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def alias_bomb(levels: int = 9) -> str:
    lines = ["version: loom/1", "kind: app", "app: {name: bomb, mode: workflow}", 'l0: &l0 ["lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*l{i - 1}"] * 6)
        lines.append(f"l{i}: &l{i} [{refs}]")
    lines.append(f"workflow: {{graph: {{nodes: [], edges: [], extra: *l{levels - 1}}}}}")
    return "\n".join(lines) + "\n"


async def test_gateway_dsl_import_refuses_yaml_aliases(gateway, admin) -> None:
    c, h = gateway.client, admin.headers
    bomb = alias_bomb()
    assert len(bomb) < 600  # expands to 4 * 6**8 ~ 6.7 million strings
    before = (await c.get(admin.ws("/apps"), headers=h)).json()["total"]
    r = await c.post(admin.ws("/apps/import"), json={"data": bomb}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "data", r.text
    assert "aliases are not accepted" in r.json()["message"]
    # a Dify export spelled with an anchor is refused the same way
    dify = "app: {name: d, mode: workflow}\nkind: app\nversion: 0.1.5\nx: &a 1\ny: *a\nworkflow: {graph: {nodes: []}}\n"
    r = await c.post(admin.ws("/apps/import"), json={"data": dify}, headers=h)
    assert r.status_code == 400 and "aliases" in r.json()["message"]
    assert (await c.get(admin.ws("/apps"), headers=h)).json()["total"] == before


async def test_gateway_dsl_import_caps_the_text(gateway, admin) -> None:
    c, h = gateway.client, admin.headers
    padding = "#" + "x" * (MAX_DSL_CHARS + 10) + "\n"
    r = await c.post(admin.ws("/apps/import"), json={"data": padding + "version: loom/1\n"}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "data" and "limit" in r.json()["message"], r.text[:300]
