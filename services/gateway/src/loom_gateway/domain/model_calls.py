"""The model calls the gateway makes itself, around an app's answers (Dify's suggested
questions, conversation names): one short reply held to a JSON schema, by the model the app
answers with. Runs of the app itself never come through here: they go to the orchestrator.
"""

from __future__ import annotations

from typing import Any, Protocol


class Model(Protocol):
    async def complete(self, model: str, prompt: str, *, json_schema: str, max_tokens: int,
                       tenant_id: str) -> tuple[str, int]:
        """One user turn answered at temperature 0: (the reply, tokens used)."""
        ...


def app_model(doc: dict[str, Any]) -> str | None:
    """The model of the app's first LLM or agent node (the one that wrote its answers)."""
    for node in (doc.get("workflow") or {}).get("graph", {}).get("nodes", []):
        data = node.get("data") or {}
        if data.get("type") in ("llm", "agent") and (data.get("model") or {}).get("name"):
            return data["model"]["name"]
    return None
