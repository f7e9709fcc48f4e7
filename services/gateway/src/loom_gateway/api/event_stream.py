"""The gateway's server-sent-events response: frames from an async iterator, keep-alive pings,
and the stream's end when its client leaves, with ONE helper task per stream.

sse-starlette's EventSourceResponse, used before, ran each stream as an anyio task group of
four tasks (the frames, pings, a shutdown watcher, a disconnect listener) and put a cancel
scope around every write; on a chat run's path that was the gateway's biggest item after the
run's own work. What the gateway uses of it is kept here:

- frames: `bytes` go out as they are (api/sse.py writes its frames itself); a `dict` is one
  sse-starlette `ServerSentEvent` (`{"data": ...}`), encoded by that library;
- a ping every `ping_s` (Dify's `event: ping`; a comment line for the OpenAI API), from the
  helper task, which also waits for the client's `http.disconnect`;
- a client that leaves ends its stream at once: the frames' iterator is closed where it waits
  (its `finally` blocks run: a run's feed is unsubscribed, the run itself goes on);
- HEAD: the headers alone (Starlette answers HEAD on every GET route).

Server shutdown needs nothing here: the runtime drains the bus first, which ends every feed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from sse_starlette import ServerSentEvent
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

DIFY_PING = b"event: ping\n\n"  # exactly Dify's keep-alive: an event with no data line
COMMENT_PING = b": ping\n\n"    # a comment line, which SSE clients (the OpenAI SDKs) skip


def data_frame(line: str) -> bytes:
    """One event of a single `data:` line; `line` holds no line break (compact JSON never does)."""
    return f"data: {line}\n\n".encode()


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes | dict], *, ping_s: float, ping: bytes = COMMENT_PING,
                 headers: Mapping[str, str] | None = None) -> None:
        self.frames = frames
        self.ping_s = ping_s
        self.ping = ping
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-store", **(headers or {}), "Connection": "keep-alive",
                           "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if scope.get("method") == "HEAD":
            await self._close_frames()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        streaming = asyncio.current_task()
        assert streaming is not None
        left = False

        async def watch() -> None:
            nonlocal left
            while True:
                try:
                    async with asyncio.timeout(self.ping_s if self.ping_s > 0 else None):
                        message = await receive()
                except TimeoutError:
                    try:
                        await send({"type": "http.response.body", "body": self.ping, "more_body": True})
                        continue
                    except Exception:  # the connection is gone (servers that raise rather than drop it)
                        message = {"type": "http.disconnect"}
                if message["type"] == "http.disconnect":
                    left = True
                    streaming.cancel()  # where the frames wait (a run's next event, most often)
                    return

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            async for frame in self.frames:
                body = frame if isinstance(frame, bytes) else ServerSentEvent(**frame, sep="\n").encode()
                await send({"type": "http.response.body", "body": body, "more_body": True})
            watcher.cancel()  # no ping after the end
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not left:  # cancelled from outside (the server stopping): not ours to swallow
                raise
            streaming.uncancel()
        finally:
            watcher.cancel()
            await self._close_frames()

    async def _close_frames(self) -> None:
        aclose = getattr(self.frames, "aclose", None)
        if aclose is not None:
            await aclose()
