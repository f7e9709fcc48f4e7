"""What every remote-provider backend shares: one pooled httpx client, the active-request count
the router balances on, a streamed POST whose HTTP errors become typed engine errors, and the
OpenAI-style function schema both OpenAI and Ollama servers take for tools (and images as data: URLs)."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator

import httpx

from loom_common import tls
from loom_inference.engine.types import BackendError, Image, InvalidRequest, ModelInfo, Overloaded, ToolSpec


def raise_for(resp: httpx.Response, body: str) -> None:
    if resp.status_code == 429:
        raise Overloaded(f"remote endpoint is overloaded: {body[:200]}")
    if resp.status_code in (400, 422):
        raise InvalidRequest(f"remote endpoint rejected the request: {body[:200]}", "messages")
    if resp.status_code >= 400:
        raise BackendError(f"remote endpoint answered HTTP {resp.status_code}: {body[:200]}")


def data_url(img: Image) -> str:
    """An image inline, as OpenAI's image_url parts take it (a vision remote model's)."""
    return f"data:{img.mime};base64,{base64.b64encode(img.data).decode()}"


def function_tools(tools: list[ToolSpec]) -> list[dict]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters or {}}} for t in tools]


class RemoteHttpBackend:
    def __init__(self, info: ModelInfo, url: str, remote_model: str, *, headers: dict[str, str] | None = None,
                 timeout_s: float = 120.0) -> None:
        self.info = info
        self.info.loaded = True
        self.url = url.rstrip("/")
        self.remote_model = remote_model
        # verify: the system's CAs plus Loom's own (LOOM_TLS_CA_FILE), for another Loom's model API.
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0), headers=headers or {},
                                         verify=tls.httpx_verify())
        self._active = 0

    async def start(self) -> None:
        return None

    def load(self) -> tuple[int, int]:
        return self._active, 0

    async def close(self) -> None:
        await self._client.aclose()

    @contextlib.asynccontextmanager
    async def stream_lines(self, path: str, body: dict) -> AsyncIterator[AsyncIterator[str]]:
        """POST `body` to `path`, yield the response's lines; errors come out typed."""
        if not self.url:
            raise BackendError(f"{self.info.name}: no url configured (MODEL_API_URL)")
        self._active += 1
        try:
            async with self._client.stream("POST", f"{self.url}{path}", json=body) as resp:
                if resp.status_code >= 400:
                    raise_for(resp, (await resp.aread()).decode(errors="replace"))
                yield resp.aiter_lines()
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.info.name}: {exc!r}") from exc
        finally:
            self._active -= 1
