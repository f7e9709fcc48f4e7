"""Account and quota abuse (issue 18, point 6), against the gateway on the real Postgres and NATS:
failed logins throttled per account and per address, one password hash checked whether the
e-mail exists or not, a token quota that concurrent runs cannot all pass, and key limits where
0 is not "unlimited" and unlimited is the owner's call."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from argon2 import PasswordHasher
from gateway_testkit import PASSWORD, make_app

from loom_gateway.domain import security
from loom_gateway.store.login_throttle import LoginPolicy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _client_from(gateway, ip: str) -> httpx.AsyncClient:
    """The same in-process gateway, seen from another client address."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.rt.http, client=(ip, 40000)),
                             base_url="http://gw")


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/console/api/login", json={"email": email, "password": password})


async def test_gateway_failed_logins_throttled_per_account_and_per_address(gateway, admin) -> None:
    gateway.rt.http.state.gw.accounts.throttle.policy = LoginPolicy(max_per_account=3, max_per_ip=6, window_s=900)
    attacker, other = _client_from(gateway, "203.0.113.7"), _client_from(gateway, "198.51.100.9")
    sprayer = _client_from(gateway, "192.0.2.50")
    async with attacker, other, sprayer:
        # A success before the limit clears the account's count.
        first = [(await _login(attacker, "admin@example.com", "wrong-pass-1")).status_code for _ in range(2)]
        assert first == [401, 401]
        assert (await _login(attacker, "admin@example.com", PASSWORD)).status_code == 200

        codes = [(await _login(attacker, "admin@example.com", f"guess-{i}-xx")).status_code for i in range(4)]
        assert codes == [401, 401, 401, 429]
        throttled = await _login(other, "admin@example.com", PASSWORD)   # per account: from anywhere, even right
        assert throttled.status_code == 429 and throttled.json()["code"] == "too_many_login_attempts"
        assert 0 < int(throttled.headers["Retry-After"]) <= 900

        # Per address: spraying one password over many e-mails (known or not) from one address.
        spray = [(await _login(sprayer, f"user{i}@example.com", "password-1")).status_code for i in range(7)]
        assert spray == [401] * 6 + [429]
        assert (await _login(other, "user9@example.com", "password-1")).status_code == 401  # another address


async def test_gateway_login_checks_one_hash_for_unknown_emails(gateway, admin, monkeypatch) -> None:
    """No timing tells an unknown e-mail from a known one: each costs one argon2 verification."""
    verified: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash, password):
            verified.append(hash)
            return super().verify(hash, password)

    monkeypatch.setattr(security, "_hasher", Counting())
    c = gateway.client
    for email, password, status in (("nobody@example.com", "whatever-123", 401),
                                     ("admin@example.com", "whatever-123", 401), ("admin@example.com", PASSWORD, 200)):
        verified.clear()
        assert (await _login(c, email, password)).status_code == status
        assert len(verified) == 1 and verified[0].startswith("$argon2"), email


async def test_gateway_concurrent_runs_cannot_all_pass_a_token_quota(gateway, admin, orchestrator) -> None:
    """Four concurrent chat runs against a quota of 1 token a day: one is admitted (holding its
    app's budget), the others are refused; the run's end settles the count to what it used."""
    c, h = gateway.client, admin.headers
    _, key = await make_app(c, admin, "chat")
    assert (await c.patch(admin.ws(""), json={"tokens_per_day": 1}, headers=h)).status_code == 200
    kh = {"Authorization": f"Bearer {key}"}

    async def chat(i: int) -> httpx.Response:
        return await c.post("/v1/chat-messages", headers=kh, json={"query": f"q{i}", "user": f"u{i}",
                                                                     "response_mode": "blocking"})

    answers = await asyncio.gather(*(chat(i) for i in range(4)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 429, 429, 429], [r.text for r in answers]
    assert all(r.json()["code"] == "quota_exceeded" for r in answers if r.status_code == 429)
    usage = (await c.get(admin.ws("/usage"), headers=h)).json()
    assert usage["tokens_today"] == 7   # the scripted run's 7 tokens, not its 256-token reservation
    assert (await chat(9)).status_code == 429   # used up


async def test_gateway_refused_run_gives_its_reservation_back(gateway, admin, orchestrator) -> None:
    c, h = gateway.client, admin.headers
    _, key = await make_app(c, admin, "chat")
    assert (await c.patch(admin.ws(""), json={"tokens_per_day": 100_000}, headers=h)).status_code == 200
    kh = {"Authorization": f"Bearer {key}"}
    missing = await c.post("/v1/chat-messages", headers=kh, json={"query": "q", "user": "u",
                                                                  "conversation_id": "not-a-conversation"})
    assert missing.status_code == 404
    assert (await c.get(admin.ws("/usage"), headers=h)).json()["tokens_today"] == 0


async def test_gateway_key_limits_zero_is_not_unlimited_and_unlimited_is_owner_only(gateway, admin) -> None:
    c, h = gateway.client, admin.headers
    app_id, _ = await make_app(c, admin, "chat")
    key_id = (await c.get(admin.ws(f"/apps/{app_id}/api-keys"), headers=h)).json()["data"][0]["id"]
    inv = await c.post(admin.ws("/invitations"), json={"email": "ed@example.com", "role": "editor"}, headers=h)
    joined = await c.post("/console/api/invitations/accept", json={"token": inv.json()["token"], "name": "Ed",
                                                                   "password": PASSWORD})
    ed = {"Authorization": f"Bearer {joined.json()['access_token']}"}
    path = admin.ws(f"/apps/{app_id}/api-keys/{key_id}")

    for body in ({"rpm_limit": 0}, {"tokens_per_day": 0}):
        r = await c.patch(path, json=body, headers=ed)
        assert r.status_code == 400 and r.json()["field"] == next(iter(body)), r.text
    for body in ({"rpm_limit": None}, {"tokens_per_day": None}):
        r = await c.patch(path, json=body, headers=ed)
        assert r.status_code == 403 and r.json()["code"] == "owner_only", r.text
    assert (await c.patch(path, json={"rpm_limit": 5, "tokens_per_day": 1000}, headers=ed)).status_code == 200
    assert (await c.patch(path, json={"rpm_limit": 0}, headers=h)).status_code == 400   # not even the owner
    assert (await c.patch(path, json={"rpm_limit": None}, headers=h)).status_code == 200
    (row,) = (await c.get(admin.ws(f"/apps/{app_id}/api-keys"), headers=h)).json()["data"]
    assert (row["rpm_limit"], row["rpm_unlimited"], row["tokens_per_day"]) == (None, True, 1000)


async def test_gateway_concurrent_completions_cannot_all_pass_a_token_quota(gateway, admin, monkeypatch) -> None:
    """The OpenAI route: a completion holds its `max_tokens` while it runs. The model's answer is
    held back by a stand-in generator (this test is about the gateway's admission, on the real
    Postgres), so all four requests are in flight together."""
    from loom_gateway.clients.inference import Chunk

    c, h = gateway.client, admin.headers
    release, in_model, entered = asyncio.Event(), asyncio.Event(), []

    async def generate(args, tenant_id):
        entered.append(args.sampling.get("max_tokens"))
        in_model.set()
        await release.wait()
        yield Chunk(text="hi", model="m", finish_reason="stop", prompt_tokens=2, completion_tokens=1)

    monkeypatch.setattr(gateway.rt.http.state.gw.inference, "generate", generate)
    _, key = await make_app(c, admin, "chat")
    assert (await c.patch(admin.ws(""), json={"tokens_per_day": 1}, headers=h)).status_code == 200
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    calls = [asyncio.create_task(c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                        json=body)) for _ in range(4)]
    pending = set(calls)
    async with asyncio.timeout(60):   # a bound on a hang, not on speed
        await in_model.wait()
        while len(pending) > 1:       # the others are answered while one is in the model
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    release.set()
    answers = await asyncio.gather(*calls)
    assert sorted(r.status_code for r in answers) == [200, 429, 429, 429], [r.text for r in answers]
    assert entered == [50]
    assert (await c.get(admin.ws("/usage"), headers=h)).json()["tokens_today"] == 3   # settled to what it used
