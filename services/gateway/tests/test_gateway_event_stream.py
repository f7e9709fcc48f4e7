"""The gateway's SSE response (api/event_stream.py) on its own ASGI contract: frames and pings
go out, a client that leaves ends the stream where it waits (the frames' cleanup runs, the
request's task is not left cancelled), HEAD gets the headers alone."""

from __future__ import annotations

import asyncio
import contextlib

from loom_gateway.api.event_stream import DIFY_PING, EventStream


class Client:
    """An ASGI server's side of one request: what was sent, and a disconnect on demand."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.gone = asyncio.Event()
        self.pinged_twice = asyncio.Event()

    async def receive(self) -> dict:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        if self.bodies().count(DIFY_PING) >= 2:
            self.pinged_twice.set()

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def test_frames_then_the_end_and_headers() -> None:
    async def frames():
        yield b"id: 1\ndata: {}\n\n"
        yield {"data": "[DONE]"}

    client = Client()
    await EventStream(frames(), ping_s=10.0, headers={"Cache-Control": "no-cache"})(
        {"type": "http", "method": "POST"}, client.receive, client.send)
    start = client.sent[0]
    headers = dict(start["headers"])
    assert start["status"] == 200 and headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"cache-control"] == b"no-cache" and headers[b"x-accel-buffering"] == b"no"
    assert client.bodies() == [b"id: 1\ndata: {}\n\n", b"data: [DONE]\n\n", b""]
    assert client.sent[-1]["more_body"] is False


async def test_pings_while_quiet_and_a_client_leaving_ends_the_stream_where_it_waits() -> None:
    closed = asyncio.Event()

    async def frames():
        try:
            yield b"data: 1\n\n"
            await asyncio.Event().wait()  # a run that sends nothing more
            yield b"never"
        finally:
            closed.set()

    client = Client()
    stream = asyncio.ensure_future(EventStream(frames(), ping_s=0.05, ping=DIFY_PING)(
        {"type": "http", "method": "POST"}, client.receive, client.send))
    await asyncio.wait_for(client.pinged_twice.wait(), 30)
    client.gone.set()
    await stream  # returns (not cancelled): the client left, the server goes on
    assert closed.is_set() and not stream.cancelled()
    assert client.bodies()[0] == b"data: 1\n\n" and b"never" not in client.bodies()
    assert not any(m.get("more_body") is False for m in client.sent)  # no end written to a client gone


async def test_a_cancel_from_outside_is_not_swallowed() -> None:
    async def frames():
        await asyncio.Event().wait()
        yield b""

    client = Client()
    stream = asyncio.ensure_future(EventStream(frames(), ping_s=10.0)(
        {"type": "http", "method": "POST"}, client.receive, client.send))
    await asyncio.sleep(0.01)
    stream.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stream
    assert stream.cancelled()


async def test_head_gets_the_headers_alone() -> None:
    async def frames():
        yield b"data: 1\n\n"

    client = Client()
    await EventStream(frames(), ping_s=10.0)({"type": "http", "method": "HEAD"}, client.receive, client.send)
    assert client.sent[0]["type"] == "http.response.start" and client.bodies() == [b""]
