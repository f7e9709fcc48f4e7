"""The real `loom-tools` process over gRPC: listing, invoking, managing the registry; every
refusal comes back typed (InvokeResponse.error_code, or a gRPC status for management calls)
and the service stays up through all of them. Its log never carries a credential."""

from __future__ import annotations

import json
import sqlite3

import grpc
import httpx
import jwt
import pytest

from loom.tools.v1 import tools_pb2 as pb
from loom.tools.v1 import tools_pb2_grpc
from loom_common.devstack import infra
from loom_common.grpc_client import call_metadata
from loom_common.grpc_errors import error_from_rpc
from loom_common.testing import service_channel

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "grpc-secret-token-789"


@pytest.fixture
def service(run_service, tmp_path):
    port = infra.free_port()
    db = tmp_path / "sqlite" / "shop.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO items VALUES (1, 'lamp')")
    proc = run_service("tools", env={
        "LOOM_TOOLS_GRPC_PORT": str(port), "LOOM_TOOLS_HTTP_ALLOWLIST": "127.0.0.1",
        "LOOM_TOOLS_SQLITE_ROOTS": str(db.parent), "LOOM_TOOLS_SANDBOX_CPU_S": "1",
        "LOOM_TOOLS_SANDBOX_WALL_S": "30", "LOOM_TOOLS_LOG_LEVEL": "DEBUG"})
    proc.grpc_addr = f"127.0.0.1:{port}"
    proc.sqlite_path = str(db)
    return proc


async def test_tools_grpc_service(service, api_server, tenant):
    spec = httpx.get(f"{api_server.url}/openapi.json").text
    async with service_channel(service.grpc_addr) as channel:
        stub = tools_pb2_grpc.ToolsStub(channel)

        async def invoke(tool: str, args, **kw) -> pb.InvokeResponse:
            raw = args if isinstance(args, str) else json.dumps(args)
            return await stub.Invoke(pb.InvokeRequest(tenant_id=tenant, tool=tool, arguments_json=raw, **kw),
                                     timeout=30)

        listed = await stub.ListTools(pb.ListToolsRequest(tenant_id=tenant), timeout=10)
        names = {t.name for t in listed.tools}
        assert {"time.now", "math.eval", "json.query", "text.stats", "http.request", "code.python"} <= names
        schema = json.loads(next(t for t in listed.tools if t.name == "math.eval").parameters_json_schema)
        assert schema["required"] == ["expression"]

        ok = await invoke("math.eval", {"expression": "6 * 7"}, run_id="run-1", node_id="n1")
        assert ok.ok and json.loads(ok.result_json)["result"] == 42 and ok.duration_ms > 0

        code = await invoke("code.python", {"code": "def main(a):\n    return {'b': a + 1}", "inputs": {"a": 1}})
        assert code.ok and json.loads(code.result_json) == {"b": 2}

        # Management: import the loopback API's own spec with a bearer token, add a SQLite connection.
        imported = await stub.ImportOpenAPI(pb.ImportOpenAPIRequest(
            tenant_id=tenant, prefix="shop", spec=spec, base_url=api_server.url,
            credentials=pb.Credentials(bearer_token="shop-token-123")), timeout=30)
        assert "shop.get_item" in {t.name for t in imported.tools} and all(t.has_credentials for t in imported.tools)
        got = await invoke("shop.get_item", {"item_id": 3})
        assert got.ok and json.loads(got.result_json)["body"]["name"] == "item-3"
        conn = await stub.AddConnection(pb.AddConnectionRequest(tenant_id=tenant, name="lite", driver="sqlite",
                                                                path=service.sqlite_path), timeout=10)
        assert [t.name for t in conn.tools] == ["lite.query", "lite.schema"]
        await stub.RegisterTool(pb.RegisterToolRequest(
            tenant_id=tenant, name="echo", method="GET", url=f"{api_server.url}/echo-headers",
            credentials=pb.Credentials(api_key=pb.ApiKey(header="X-Secret", value=TOKEN))), timeout=10)

        refusals = {
            "invalid_arguments": await invoke("math.eval", {"expr": "1"}),
            "not_found": await invoke("nope.nothing", {}),
            "ssrf_blocked": await invoke("http.request", {"url": "http://169.254.169.254/latest/meta-data/"}),
            "sql_refused": await invoke("lite.query", {"sql": "DELETE FROM items"}),
            "sandbox_limit": await invoke("code.python", {"code": "def main():\n    while True:\n        pass"}),
            "timeout": await invoke("code.python", {"code": "import time\ndef main():\n    time.sleep(60)"},
                                   timeout_s=3),
            "code_error": await invoke("code.python", {"code": "def main():\n    raise ValueError('boom')"}),
            "upstream_error": await invoke("shop.create_item", {"body": {"name": "x", "price": 1}}),
        }
        for code_, out in refusals.items():
            assert (out.ok, out.error_code) == (False, code_), (code_, out)
            assert out.error_message
        assert refusals["invalid_arguments"].error_field == "expression"
        assert refusals["ssrf_blocked"].error_field == "url"
        assert refusals["sql_refused"].error_field == "sql"
        bad_json = await invoke("math.eval", "{not json")
        assert (bad_json.error_code, bad_json.error_field) == ("invalid_arguments", "arguments_json")

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RegisterTool(pb.RegisterToolRequest(tenant_id=tenant, name="bad name!", url="https://a.example"),
                                    timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        refused = error_from_rpc(err.value, "tools")  # the code and field travel as google.rpc details
        assert (refused.code, refused.field) == ("invalid_arguments", "name")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ImportOpenAPI(pb.ImportOpenAPIRequest(tenant_id=tenant, prefix="shop", spec=spec,
                                                             base_url=api_server.url), timeout=10)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.DeleteTool(pb.DeleteToolRequest(tenant_id=tenant, name="missing"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

        # Credentials never travel back: not in listings, not in the echoing API's result.
        listing = await stub.ListTools(pb.ListToolsRequest(tenant_id=tenant), timeout=10)
        wire = listing.SerializeToString()
        assert b"shop-token-123" not in wire and TOKEN.encode() not in wire
        echoed = await invoke("echo", {})
        assert echoed.ok and TOKEN not in echoed.result_json and "***" in echoed.result_json

        deleted = await stub.DeleteTool(pb.DeleteToolRequest(tenant_id=tenant, name="shop.*"), timeout=10)
        assert deleted.deleted == len(imported.tools)

        # Still up and serving after every refusal.
        assert service.proc.poll() is None
        assert httpx.get(service.base_url + "/readyz").status_code == 200
        again = await invoke("math.eval", {"expression": "1 + 1"})
        assert again.ok

    assert service.stop() == 0   # SIGTERM drains cleanly
    log = service.log_path.read_text(errors="replace")
    assert "tool invoked" in log
    assert TOKEN not in log and "shop-token-123" not in log


async def test_tools_trust_the_service_token_not_the_body(service, api_server, tenant) -> None:
    """Reaching the gRPC port is not enough: a call needs a service token (forged or missing ->
    UNAUTHENTICATED), and a token for one tenant cannot list or invoke another tenant's tools."""
    other = f"{tenant}-other"
    async with grpc.aio.insecure_channel(service.grpc_addr) as channel:
        stub = tools_pb2_grpc.ToolsStub(channel)
        await stub.RegisterTool(pb.RegisterToolRequest(tenant_id=other, name="secret_api", method="GET",
                                                       url=f"{api_server.url}/echo-headers"),
                                metadata=call_metadata(tenant_id=other), timeout=10)
        forged = jwt.encode({"iss": "loom-gateway", "aud": "loom-internal", "tenant": other, "iat": 1,
                             "exp": 4_000_000_000}, "a-guessed-secret-of-enough-length-000000", algorithm="HS256")
        for metadata in ((), (("authorization", f"Bearer {forged}"),)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ListTools(pb.ListToolsRequest(tenant_id=other), metadata=metadata, timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        mine = call_metadata(tenant_id=tenant)
        for call in (stub.ListTools(pb.ListToolsRequest(tenant_id=other), metadata=mine, timeout=10),
                     stub.Invoke(pb.InvokeRequest(tenant_id=other, tool="secret_api", arguments_json="{}"),
                                 metadata=mine, timeout=10)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "tenant_id" in err.value.details()
        own = await stub.ListTools(pb.ListToolsRequest(tenant_id=tenant), metadata=mine, timeout=10)
        assert "secret_api" not in {t.name for t in own.tools}
        theirs = await stub.ListTools(pb.ListToolsRequest(tenant_id=other), metadata=call_metadata(tenant_id=other),
                                      timeout=10)
        assert "secret_api" in {t.name for t in theirs.tools}
