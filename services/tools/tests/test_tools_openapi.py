"""OpenAPI import of a real spec (the loopback FastAPI app's own generated document) and calls
through it with bearer and API-key auth; credentials sealed at rest and never in any output
or log line; every invocation audited."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken

from loom_tools.domain.audit import args_sha256
from loom_tools.domain.secrets import load_key
from loom_tools.domain.types import Call
from loom_tools.errors import Conflict, InvalidArguments
from loom_tools.toolbox import build_toolbox

pytestmark = pytest.mark.integration

TOKEN = "shop-token-123"
KEY = "shop-key-456"


@pytest.fixture
def spec_text(api_server) -> str:
    return httpx.get(f"{api_server.url}/openapi.json").text


async def test_tools_openapi_import_and_call(toolbox_factory, tenant, api_server, spec_text):
    box = toolbox_factory(http_allowlist="127.0.0.1")
    tools = await box.catalog.import_openapi(tenant, prefix="shop", spec=spec_text, base_url=api_server.url,
                                             credentials={"type": "bearer", "token": TOKEN})
    by_name = {t.name: t for t in tools}
    assert {"shop.get_item", "shop.create_item", "shop.echo_headers", "shop.redirect"} <= set(by_name)
    get_item = by_name["shop.get_item"].parameters
    assert get_item["required"] == ["item_id"] and get_item["properties"]["item_id"]["type"] == "integer"
    create = by_name["shop.create_item"].parameters
    assert create["required"] == ["body"] and set(create["properties"]["body"]["required"]) == {"name", "price"}

    ex = box.executor
    out = await ex.invoke(Call(tenant, "shop.get_item", {"item_id": 7, "verbose": True}, run_id="run-1",
                               node_id="tool-1"))
    assert out.ok, out.error_message
    assert out.result["status"] == 200 and out.result["body"] == {"id": 7, "name": "item-7", "verbose": True}

    # Arguments are checked against the imported schema before any request leaves.
    bad = await ex.invoke(Call(tenant, "shop.get_item", {"item_id": "seven"}))
    assert bad.error_code == "invalid_arguments" and bad.error_field == "item_id"
    bad_body = await ex.invoke(Call(tenant, "shop.create_item", {"body": {"name": "x"}}))
    assert bad_body.error_code == "invalid_arguments" and bad_body.error_field == "body.price"

    # The bearer token does not open the API-key operation: an upstream error, typed.
    denied = await ex.invoke(Call(tenant, "shop.create_item", {"body": {"name": "lamp", "price": 9.5}}))
    assert denied.error_code == "upstream_error" and "403" in denied.error_message

    # Re-import with an API key, replacing the prefix.
    await box.catalog.import_openapi(tenant, prefix="shop", spec=spec_text, base_url=api_server.url, replace=True,
                                     credentials={"type": "api_key", "header": "X-API-Key", "value": KEY})
    created = await ex.invoke(Call(tenant, "shop.create_item", {"body": {"name": "lamp", "price": 9.5}}))
    assert created.ok and created.result["body"] == {"created": {"name": "lamp", "price": 9.5}}

    with pytest.raises(Conflict):
        await box.catalog.import_openapi(tenant, prefix="shop", spec=spec_text, base_url=api_server.url)


async def test_tools_openapi_calls_still_go_through_the_guard(toolbox_factory, tenant, api_server, spec_text):
    box = toolbox_factory()   # loopback not allowlisted
    await box.catalog.import_openapi(tenant, prefix="shop", spec=spec_text, base_url=api_server.url)
    out = await box.executor.invoke(Call(tenant, "shop.get_item", {"item_id": 1}))
    assert out.error_code == "ssrf_blocked"


@pytest.mark.parametrize(("spec", "field"), [
    ("not: [valid", "spec"), ('{"swagger": "2.0", "paths": {}}', "spec"),
    ('{"openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "paths": {"/a": {"get": {"responses": '
     '{"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": '
     '"http://169.254.169.254/schema.json"}}}}}}}}}', "spec"),
    ('{"openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "paths": {}}', "spec"),
])
async def test_tools_openapi_bad_documents_refused(toolbox_factory, tenant, spec, field):
    with pytest.raises(InvalidArguments) as err:
        await toolbox_factory().catalog.import_openapi(tenant, prefix="x", spec=spec, base_url="https://api.example")
    assert err.value.field == field


async def test_tools_credentials_sealed_and_never_shown(toolbox_factory, tenant, api_server, spec_text, pool,
                                                        caplog):
    caplog.set_level(logging.DEBUG)
    box = toolbox_factory(http_allowlist="127.0.0.1")
    listed = await box.catalog.import_openapi(tenant, prefix="echo", spec=spec_text, base_url=api_server.url,
                                              credentials={"type": "bearer", "token": TOKEN})
    await box.catalog.register_http(tenant, name="echo2", description="echo", method="GET",
                                    url=f"{api_server.url}/echo-headers", parameters=None,
                                    credentials={"type": "api_key", "header": "X-API-Key", "value": KEY})
    # At rest: encrypted.
    rows = await pool.fetch("SELECT name, credentials, config::text AS config FROM tools WHERE tenant_id = $1",
                            tenant)
    for row in rows:
        assert row["credentials"] is not None
        assert TOKEN.encode() not in bytes(row["credentials"]) and KEY.encode() not in bytes(row["credentials"])
        assert TOKEN not in row["config"] and KEY not in row["config"]
    # In listings: only the fact that there are some.
    listing = await box.executor.list(tenant)
    assert all(s.credentials is None for s in [*listed, *listing])
    assert any(s.has_credentials for s in listing)
    # An API that echoes the credential back: the result is scrubbed.
    for tool in ("echo.echo_headers", "echo2"):
        out = await box.executor.invoke(Call(tenant, tool, {}))
        assert out.ok, out.error_message
        text = json.dumps(out.result)
        assert TOKEN not in text and KEY not in text and "***" in text
    # An upstream error quoting it: the message is scrubbed too.
    out = await box.executor.invoke(Call(tenant, "echo.redirect", {"to": f"http://10.0.0.1/{TOKEN}"}))
    assert out.error_code == "ssrf_blocked" and TOKEN not in out.error_message
    assert TOKEN not in caplog.text and KEY not in caplog.text
    assert all(TOKEN not in r.getMessage() and KEY not in r.getMessage() for r in caplog.records)


async def test_tools_every_invocation_audited(toolbox_factory, tenant, pool):
    ex = toolbox_factory().executor
    await ex.invoke(Call(tenant, "math.eval", {"expression": "1+1"}, run_id="run-9", node_id="calc"))
    await ex.invoke(Call(tenant, "math.eval", {"expression": "1/0"}, run_id="run-9", node_id="calc"))
    await ex.invoke(Call(tenant, "nope", {}, run_id="run-9"))
    rows = await pool.fetch("SELECT tool, run_id, node_id, args_sha256, duration_ms, outcome, error_code "
                            "FROM invocations WHERE tenant_id = $1 ORDER BY id", tenant)
    assert [(r["tool"], r["outcome"], r["error_code"]) for r in rows] == [
        ("math.eval", "ok", ""), ("math.eval", "error", "invalid_arguments"), ("nope", "error", "not_found")]
    assert rows[0]["run_id"] == "run-9" and rows[0]["node_id"] == "calc"
    assert rows[0]["args_sha256"] == args_sha256({"expression": "1+1"}) and rows[0]["duration_ms"] >= 0


async def test_tools_registry_is_per_tenant(toolbox_factory, tenant):
    box = toolbox_factory()
    await box.catalog.register_http(tenant, name="weather", description="w", method="GET",
                                    url="https://api.example/weather", parameters={
                                        "type": "object", "properties": {"city": {"type": "string"}},
                                        "required": ["city"]})
    other = tenant + "-other"
    assert "weather" in {s.name for s in await box.executor.list(tenant)}
    assert "weather" not in {s.name for s in await box.executor.list(other)}
    assert (await box.executor.invoke(Call(other, "weather", {"city": "Oslo"}))).error_code == "not_found"
    missing = await box.executor.invoke(Call(tenant, "weather", {}))
    assert missing.error_code == "invalid_arguments" and missing.error_field == "city"
    with pytest.raises(InvalidArguments) as err:
        await box.catalog.register_http(tenant, name="time.now", description="", method="GET",
                                        url="https://a.example/", parameters=None)
    assert err.value.field == "name"
    with pytest.raises(InvalidArguments) as err:
        await box.catalog.register_http(tenant, name="x", description="", method="GET", url="https://a.example/",
                                        parameters={"type": "object"}, credentials={"type": "basic", "pw": "s"})
    assert err.value.field == "credentials"
    assert await box.catalog.delete(tenant, "weather") == 1
    assert (await box.executor.invoke(Call(tenant, "weather", {"city": "Oslo"}))).error_code == "not_found"


async def test_tools_credentials_encrypted_with_the_configured_key(settings_factory, pool, tenant):
    settings = settings_factory()
    box = build_toolbox(settings, pool)
    await box.catalog.register_http(tenant, name="k", description="", method="GET", url="https://a.example/",
                                    parameters=None, credentials={"type": "bearer", "token": TOKEN})
    sealed = bytes(await pool.fetchval("SELECT credentials FROM tools WHERE tenant_id = $1", tenant))
    assert json.loads(Fernet(settings.secret_key.encode()).decrypt(sealed)) == {"type": "bearer", "token": TOKEN}
    with pytest.raises(InvalidToken):
        Fernet(Fernet.generate_key()).decrypt(sealed)


def test_tools_dev_key_generated_once_under_loom_home(tmp_path):
    first = load_key(None, tmp_path)
    assert load_key(None, tmp_path) == first
    key_file = tmp_path / "tools" / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    Fernet(first)
