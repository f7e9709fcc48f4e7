"""A stream that has started cannot turn into an HTTP error any more: when what feeds it fails
(inference unreachable or gone mid-answer, the run feed broken), the client gets the failure as
the stream's last event, in the shape its SDK understands, and the request is not a 500."""

from __future__ import annotations

import json

import nats.errors
import pytest
from gateway_testkit import make_app

from loom_common.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def data_lines(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


async def test_openai_stream_ends_with_an_error_event_when_inference_is_unreachable(gateway, admin) -> None:
    # The test gateway's inference address is a port nothing listens on.
    _, key = await make_app(gateway.client, admin, "chat")
    r = await gateway.client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                  json={"model": "gemma3:270m", "stream": True,
                                        "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    lines = data_lines(r.text)
    assert json.loads(lines[0])["choices"][0]["delta"]["role"] == "assistant"
    error = json.loads(lines[-1])["error"]  # what the openai SDK raises as APIError
    assert error["code"] == "service_unavailable" and "inference" in error["message"]
    assert error["type"] == "server_error"
    assert "[DONE]" not in lines


def break_feeds(monkeypatch, after: int, *, for_good: bool, error: Exception | None = None) -> None:
    """The bus breaks under the request's feed after `after` events: once (a NATS node lost,
    its stream electing a leader), or for good (every feed opened again breaks at once too)."""
    from loom_gateway.bus import runs

    served, broken = 0, 0

    def failing(real):
        async def anext_(self):
            nonlocal served, broken
            if served == after and (for_good or not broken):
                broken += 1
                raise error or ConnectionError("nats: connection closed")
            served += 1
            return await real(self)
        return anext_

    monkeypatch.setattr(runs.LiveFeed, "__anext__", failing(runs.LiveFeed.__anext__))
    if for_good:
        monkeypatch.setattr(runs.Feed, "__anext__", failing(runs.Feed.__anext__))


async def chat(c, key: str) -> list[dict]:
    r = await c.post("/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                     json={"inputs": {}, "query": "hi", "user": "u1", "response_mode": "streaming"})
    assert r.status_code == 200
    return [json.loads(x) for x in data_lines(r.text)]


@pytest.mark.parametrize("error", [ConnectionError("nats: connection closed"), nats.errors.TimeoutError()],
                         ids=["connection", "bus-timeout"])
async def test_dify_stream_rides_out_a_feed_that_breaks_once(gateway, admin, orchestrator, monkeypatch,
                                                             error) -> None:
    """The gateway opens the run's feed again from the last event its client got: the client sees
    the whole answer once, in order, and no error (a stream leader election on a NATS cluster).
    A bus request's timeout (nats-py's is a TimeoutError) is a broken feed too, not the run's
    silence: read as that, it ended a stream with run_timeout at once."""
    break_feeds(monkeypatch, 2, for_good=False, error=error)
    _, key = await make_app(gateway.client, admin, "chat")
    events = await chat(gateway.client, key)
    assert [e["event"] for e in events][-1] == "message_end" and "error" not in [e["event"] for e in events]
    assert "".join(e["answer"] for e in events if e["event"] == "message") == "tok0 tok1 tok2 "


async def test_dify_stream_ends_with_an_error_event_when_its_feed_fails_and_the_run_is_still_recorded(
        gateway, admin, orchestrator, monkeypatch) -> None:
    # Feeds opened again break too: the stream gives up once its idle budget is spent.
    monkeypatch.setattr(gateway.rt.http.state.gw.settings, "stream_idle_timeout_s", 2.0)
    break_feeds(monkeypatch, 2, for_good=True)
    c = gateway.client
    _, key = await make_app(c, admin, "chat")
    h = {"Authorization": f"Bearer {key}"}
    events = await chat(c, key)
    assert [e["event"] for e in events] == ["message", "error"]  # a chat app streams message-level events only
    assert events[-1]["status"] == 503 and events[-1]["code"] == "service_unavailable"
    conv = events[0]["conversation_id"]
    # The run went on: the durable runs.finished consumer recorded it.
    async def recorded() -> dict | None:
        msgs = (await c.get("/v1/messages", params={"user": "u1", "conversation_id": conv}, headers=h)).json()
        return msgs if msgs["data"] and msgs["data"][0]["answer"] else None

    msgs = await eventually(recorded, "the run's answer in /v1/messages")
    assert msgs["data"][0]["answer"] == "tok0 tok1 tok2 "
