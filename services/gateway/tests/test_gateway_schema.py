"""schemathesis over the gateway's served OpenAPI schema, against the real stack: whatever
it generates for every operation, the gateway answers 2xx/4xx, never 5xx. Bounded: a few
examples per operation. Operations that start runs, that would end the test's own session or workspace
(logout, deleting the workspace) and the model-generating chat completion (max_tokens up to
128k of the real model; covered by the e2e tests) are left out."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from gateway_stack import app_with_key
from hypothesis import HealthCheck, given, settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

FLOW = {"nodes": [{"id": "start", "data": {"type": "start"}}, {"id": "end", "data": {"type": "end"}}],
        "edges": [{"source": "start", "target": "end"}]}
SKIP = {("POST", "/console/api/logout"), ("DELETE", "/console/api/workspaces/{workspace_id}"),
        ("POST", "/v1/chat/completions"),
        # Operations that start runs: random valid bodies queue real runs whose streams outlast a
        # bounded search; their validation (400 naming the field) is tested in test_gateway_service_api.py.
        ("POST", "/v1/workflows/run"), ("POST", "/v1/chat-messages"), ("POST", "/v1/completion-messages"),
        ("POST", "/console/api/workspaces/{workspace_id}/apps/{app_id}/draft/run"),
        ("POST", "/console/api/workspaces/{workspace_id}/apps/{app_id}/draft/nodes/{node_id}/run"),
        # Workspace settings name servers the gateway then contacts (a model endpoint, an S3 bucket:
        # AWS when no endpoint is given): random bodies would send traffic off loopback. Tested in
        # test_gateway_console_settings.py against loopback servers.
        ("POST", "/console/api/workspaces/{workspace_id}/model-endpoints"),
        ("POST", "/console/api/workspaces/{workspace_id}/model-endpoints/test"),
        ("PUT", "/console/api/workspaces/{workspace_id}/settings/storage"),
        # A model pull downloads from the engine's library (registry.ollama.ai here): tested in
        # test_gateway_console_model_pull.py against a loopback registry.
        ("POST", "/console/api/workspaces/{workspace_id}/models/pull"),
        # Adding an MCP server lists its tools, a tool test calls the tool (http.request among them):
        # random URLs would reach off loopback. Tested against a loopback MCP server in
        # test_gateway_mcp_tools.py and test_gateway_e2e_mcp.py.
        ("POST", "/console/api/workspaces/{workspace_id}/tools/mcp"),
        ("POST", "/console/api/workspaces/{workspace_id}/tools/{tool_id}/test"),
        ("POST", "/console/api/workspaces/{workspace_id}/settings/storage/test")}


@pytest.fixture(scope="session")
def creds(stack) -> dict:
    _, app_key = app_with_key(stack, "workflow", FLOW, name="schema")
    ds_key = httpx.post(stack.ws("/dataset-api-keys"), headers=stack.console).json()["token"]
    return {"console": stack.token, "app": app_key, "dataset": ds_key, "workspace_id": stack.workspace_id,
            "base_url": stack.gateway_url}


def _token(path: str, creds: dict) -> str:
    if path.startswith("/console/api"):
        return creds["console"]
    return creds["dataset"] if path.startswith("/v1/datasets") else creds["app"]


def test_gateway_schema_no_server_errors(stack, creds) -> None:
    # Driven by hand (schemathesis' pytest plugin does not load under pytest 9): one bounded
    # hypothesis search per operation.
    schema = schemathesis.openapi.from_url(f"{stack.gateway_url}/openapi.json")
    spec = httpx.get(f"{stack.gateway_url}/openapi.json").json()
    failures: list[tuple] = []
    undocumented: set[tuple] = set()
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in SKIP:
            continue
        operations += 1
        documented = set(spec["paths"][op.path][op.method.lower()]["responses"])

        @given(case=op.as_strategy())
        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case) -> None:
            if "workspace_id" in (case.path_parameters or {}):
                case.path_parameters["workspace_id"] = creds["workspace_id"]
            headers = {**(case.headers or {}), "Authorization": f"Bearer {_token(case.path, creds)}"}
            response = case.call(base_url=creds["base_url"], headers=headers, timeout=15)
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, response.status_code, response.text[:300],
                                 case.as_curl_command()))
            elif str(response.status_code) not in documented:  # noqa: B023 - check() runs right here
                undocumented.add((case.method, case.path, response.status_code))  # the schema tells every answer

        check()
    assert operations > 60
    assert not failures, "\n".join(map(str, failures[:10]))
    assert not undocumented, sorted(undocumented)
