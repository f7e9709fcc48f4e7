"""What the template end-to-end tests share: a SCRIPTED model and one-call install of a template.

`ScriptedModel` is the scripted backend the template tests give the inference service: an
OpenAI-compatible chat endpoint on loopback (streaming and not), registered with the REAL
inference service as the workspace's remote model, so every LLM node of a template goes
through the platform as with any provider. It is not a model: `answer(messages)` decides each
reply, and it records the prompts it got, so a test asserts behaviour and structure (what
reached the prompt, which branch ran), never a model's wording.

`install_template` makes a fresh workspace, registers the scripted model there (if any),
installs the template through the console API in one call, publishes the app and gives it
an API key: the ~25 lines each template test would otherwise repeat."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from loom_common.testing import ScriptedChat
from loom_gateway.clients.inference import InferenceClient

Answer = Callable[[list[dict]], str]


class ScriptedModel(ScriptedChat):
    """The scripted backend (loom_common.testing.ScriptedChat) whose replies are `answer(messages)`."""

    def __init__(self, name: str, answer: Answer) -> None:
        self.name, self.answer = name, answer
        super().__init__(lambda body: ([{"content": answer(body["messages"])}], "stop"), model=name)

    @property
    def prompts(self) -> list[list[dict]]:
        return [r["messages"] for r in self.requests]

    async def register(self, inference_addr: str, workspace_id: str) -> None:
        """The workspace's remote model `name`, served by this endpoint (through the real inference service)."""
        client = InferenceClient(inference_addr, timeout_s=10.0)
        try:
            await client.register_remote(workspace_id, self.name, "openai", f"http://127.0.0.1:{self.port}/v1", None)
        finally:
            await client.close()

    def __enter__(self) -> ScriptedModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Installed:
    workspace_id: str
    base: str                 # the workspace's console API URL
    app_id: str
    key: str                  # the published app's API key
    install: dict             # the install's answer: {template, app, datasets}
    datasets: dict[str, str] = field(default_factory=dict)

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}


def install_template(stack, http: httpx.Client, template_id: str, *, workspace: str,
                     scripted: ScriptedModel | None = None, body: dict | None = None,
                     max_tokens: int | None = None) -> Installed:
    """A fresh workspace with the template installed in one call (with the scripted model as its
    model, or the workspace's default: the bundled one), published, with an API key. `max_tokens`
    caps every model node (the bundled-model passes assert structure, and a loaded 2-core box
    decodes ~10 tokens/s)."""
    ws = http.post(f"{stack.gateway_url}/console/api/workspaces", json={"name": workspace},
                   headers=stack.console).json()["id"]
    base = f"{stack.gateway_url}/console/api/workspaces/{ws}"
    listed = http.get(f"{base}/templates", headers=stack.console).json()["data"]
    assert template_id in {t["id"] for t in listed}, listed
    body = dict(body or {})
    if scripted is not None:
        asyncio.run(scripted.register(stack.inference_addr, ws))
        body.setdefault("model", scripted.name)
    r = http.post(f"{base}/templates/{template_id}/install", json=body, headers=stack.console, timeout=60)
    assert r.status_code == 201, r.text
    out = r.json()
    app_id = out["app"]["id"]
    if max_tokens is not None:
        draft = http.get(f"{base}/apps/{app_id}/draft", headers=stack.console).json()["dsl"]
        for node in draft["workflow"]["graph"]["nodes"]:
            if "model" in node["data"]:
                node["data"]["model"].setdefault("completion_params", {})["max_tokens"] = max_tokens
        http.put(f"{base}/apps/{app_id}/draft", json={"dsl": draft}, headers=stack.console).raise_for_status()
    installed = Installed(ws, base, app_id, "", out, out.get("datasets") or {})
    http.post(f"{base}/apps/{app_id}/publish", headers=stack.console).raise_for_status()
    installed.key = http.post(f"{base}/apps/{app_id}/api-keys", json={"name": "e2e"},
                              headers=stack.console).json()["token"]
    return installed
