"""Ollama reads every request body on /api/* as JSON whatever its Content-Type, and its own docs
call it with `curl URL -d '{...}'`, which sends `application/x-www-form-urlencoded`. FastAPI
would refuse such a body ("Input should be a valid dictionary"), so this marks it as JSON first.

Safe against cross-site forms: a browser's form post carries an Origin, which the access
middleware (added after this one, so it runs before it) checks against its allow-list."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

_JSON = (b"content-type", b"application/json")


class AnyContentTypeIsJson:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/api/") and not path.startswith("/api/blobs/"):  # blobs are raw bytes
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            ctype = dict(scope["headers"]).get(b"content-type", b"")
            if b"json" not in ctype:
                scope = {**scope, "headers": [*headers, _JSON]}
        await self.app(scope, receive, send)
