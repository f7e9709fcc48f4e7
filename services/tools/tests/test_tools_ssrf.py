"""The SSRF guard and the guarded HTTP client: every vector refused with `ssrf_blocked`, the
connection pinned to the vetted address, redirects re-vetted, size and time limits.

The loopback API is reachable only where a test opens it through the allowlist setting."""

from __future__ import annotations

import ipaddress

import pytest

from loom_tools.domain.types import Call
from loom_tools.errors import SsrfBlocked
from loom_tools.net import ssrf
from loom_tools.net.ssrf import Guard

pytestmark = pytest.mark.integration

VECTORS = [
    "http://127.0.0.1/", "http://127.1.2.3:8080/x", "http://0.0.0.0/", "http://[::1]/", "http://[::]/",
    "http://10.0.0.1/", "http://10.255.1.1/", "http://172.16.5.4/", "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/", "http://169.254.170.2/", "http://[fd00:ec2::254]/",
    "http://100.100.100.200/", "http://100.64.0.1/", "http://[fe80::1]/", "http://224.0.0.1/",
    "http://[ff02::1]/", "http://240.0.0.1/", "http://255.255.255.255/", "http://[fc00::1]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/", "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::7f00:1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:7f00:1::]/",
    "http://2130706433/", "http://0x7f.1/", "http://017700000001/", "http://localhost/",
    "http://localhost.:80/", "https://127.0.0.1:443/", "http://0/", "http://[fe80::1%25eth0]/",
    "http://[::ffff:7f00:1]/", "http://[0:0:0:0:0:ffff:a9fe:a9fe]/", "http://192.0.2.1/",
    # Site-local IPv6 (fec0::/10): deprecated, yet Python calls it neither private nor reserved.
    "http://[fec0::1]/", "http://[fec0::a9fe:a9fe]/", "http://[feff:ffff::1]/",
]


@pytest.mark.parametrize("url", VECTORS)
async def test_tools_ssrf_guard_refuses(url):
    with pytest.raises(SsrfBlocked) as err:
        await Guard().vet(url)
    assert err.value.code == "ssrf_blocked" and err.value.field == "url"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://example.com/", "ftp://example.com/",
                                 "dict://127.0.0.1:11211/", "ws://example.com/", "//example.com/x", "example.com"])
async def test_tools_ssrf_guard_refuses_non_http_schemes(url):
    with pytest.raises(SsrfBlocked, match="scheme"):
        await Guard().vet(url)


@pytest.mark.parametrize("ip", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_tools_ssrf_public_addresses_pass(ip):
    assert ssrf.refusal(ipaddress.ip_address(ip)) is None


async def test_tools_ssrf_hostname_resolving_to_private_refused(monkeypatch):
    """A public-looking name whose DNS answer (any of them) is internal is refused."""
    async def fake_getaddrinfo(host, port, **kw):
        return [(2, 1, 6, "", ("93.184.215.14", port)), (2, 1, 6, "", ("10.1.2.3", port))]

    guard = Guard()
    monkeypatch.setattr("asyncio.BaseEventLoop.getaddrinfo", lambda self, *a, **kw: fake_getaddrinfo(*a, **kw))
    with pytest.raises(SsrfBlocked, match=r"10\.1\.2\.3"):
        await guard.vet("https://innocent.example/")


async def test_tools_ssrf_allowlist_opens_only_named_hosts():
    guard = Guard(frozenset({"127.0.0.1"}))
    target = await guard.vet("http://127.0.0.1:1234/x")
    assert (target.ip, target.port) == ("127.0.0.1", 1234)
    with pytest.raises(SsrfBlocked):
        await guard.vet("http://localhost:1234/x")


async def test_tools_http_request_refusals_are_typed(toolbox_factory, tenant, api_server):
    ex = toolbox_factory().executor   # no allowlist: the loopback API is out of reach
    for url in (f"{api_server.url}/big", "http://[::1]/", "http://169.254.169.254/latest/meta-data/",
                f"http://localhost:{api_server.port}/big", "file:///etc/shadow"):
        out = await ex.invoke(Call(tenant, "http.request", {"url": url}))
        assert (out.ok, out.error_code, out.error_field) == (False, "ssrf_blocked", "url"), url


async def test_tools_http_redirect_to_private_address_refused(toolbox_factory, tenant, api_server):
    ex = toolbox_factory(http_allowlist="127.0.0.1").executor
    ok = await ex.invoke(Call(tenant, "http.request", {"url": f"{api_server.url}/redirect",
                                                       "params": {"to": "/big?n=5"}}))
    assert ok.ok and ok.result["status"] == 200 and ok.result["body"] == "xxxxx"
    for to in ("http://10.0.0.7/admin", f"http://localhost:{api_server.port}/big", "http://169.254.169.254/",
               "file:///etc/passwd"):
        out = await ex.invoke(Call(tenant, "http.request", {"url": f"{api_server.url}/redirect", "params": {"to": to}}))
        assert (out.ok, out.error_code) == (False, "ssrf_blocked"), to


async def test_tools_http_connection_pinned_to_vetted_address(toolbox_factory, tenant, api_server, monkeypatch):
    """The name is resolved once, by the guard; the connection goes to that IP (a second,
    rebinding lookup never happens) and the Host header keeps the name."""
    calls = []

    async def fake_getaddrinfo(self, host, port, **kw):
        calls.append(host)
        if host == "pinned.test":
            return [(2, 1, 6, "", ("127.0.0.1", port))]
        raise OSError("unknown host")

    monkeypatch.setattr("asyncio.BaseEventLoop.getaddrinfo", fake_getaddrinfo)
    ex = toolbox_factory(http_allowlist="pinned.test").executor
    out = await ex.invoke(Call(tenant, "http.request", {"url": f"http://pinned.test:{api_server.port}/echo-headers"}))
    assert out.ok, out.error_message
    assert out.result["body"]["headers"]["host"] == f"pinned.test:{api_server.port}"
    assert calls == ["pinned.test"]


async def test_tools_http_size_and_time_limits(toolbox_factory, tenant, api_server):
    # Each limit on its own: with a 1 s timeout, a loaded machine could time the big answer out first.
    roomy = toolbox_factory(http_allowlist="127.0.0.1", http_max_response_bytes=1000, http_timeout_s=60.0).executor
    big = await roomy.invoke(Call(tenant, "http.request", {"url": f"{api_server.url}/big", "params": {"n": 5000}}))
    assert big.error_code == "response_too_large"
    ex = toolbox_factory(http_allowlist="127.0.0.1", http_max_response_bytes=1000, http_timeout_s=1.0).executor
    slow = await ex.invoke(Call(tenant, "http.request", {"url": f"{api_server.url}/slow", "params": {"s": 3}}))
    assert slow.error_code == "timeout"


async def test_tools_http_tool_credential_dropped_on_cross_origin_redirect(toolbox_factory, tenant, api_server,
                                                                          other_api_server):
    """A registered tool's API key sits in a custom header. Its API redirects to another origin
    (a second loopback server, another port): the key must not follow; on the same origin it does."""
    other = other_api_server
    box = toolbox_factory(allow_private_targets="127.0.0.1")
    secret = {"type": "api_key", "header": "X-Shop-Key", "value": "shop-secret-789"}
    for name, to in (("hop", f"{other.url}/echo-headers"), ("stay", "/echo-headers")):
        await box.catalog.register_http(
            tenant, name=name, description="", method="GET", url=f"{api_server.url}/redirect?to={to}",
            parameters={"type": "object"}, headers={"X-Trace-Note": "not secret"}, credentials=secret)
    ex = box.executor

    hop = await ex.invoke(Call(tenant, "hop", {}))
    assert hop.ok, hop.error_message
    seen = hop.result["body"]["headers"]
    assert seen["host"] == f"127.0.0.1:{other.port}"
    assert "x-shop-key" not in seen and "x-trace-note" not in seen
    assert "shop-secret-789" not in repr(hop.result)

    stay = await ex.invoke(Call(tenant, "stay", {}))
    assert stay.ok and stay.result["body"]["headers"]["x-shop-key"] == "***"  # sent, then scrubbed in the result


async def test_tools_private_targets_setting_opens_only_what_it_names(toolbox_factory, tenant, api_server):
    """LOOM_TOOLS_ALLOW_PRIVATE_TARGETS: host:port opens that port only; a CIDR opens its addresses."""
    ex = toolbox_factory(allow_private_targets=f"127.0.0.1:{api_server.port}").executor
    ok = await ex.invoke(Call(tenant, "http.request", {"url": f"{api_server.url}/big", "params": {"n": 3}}))
    assert ok.ok and ok.result["body"] == "xxx"
    other_port = await ex.invoke(Call(tenant, "http.request", {"url": f"http://127.0.0.1:{api_server.port + 1}/"}))
    assert (other_port.error_code, other_port.error_field) == ("ssrf_blocked", "url")

    allowed = ssrf.PrivateTargets.parse("10.0.0.0/8, db.corp:5432, [fd00::5]:80, 169.254.0.0/16")
    guard = Guard(private=allowed)
    assert (await guard.vet("http://10.1.2.3:8080/x")).ip == "10.1.2.3"   # decided, nothing contacted
    assert (await guard.vet("http://[fd00::5]/")).ip == "fd00::5"
    for url in ("http://192.168.0.1/", "http://[fd00::5]:81/", "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(SsrfBlocked):  # not listed, another port, metadata only when named exactly
            await guard.vet(url)
