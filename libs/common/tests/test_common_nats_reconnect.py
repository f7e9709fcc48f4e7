"""A service's NATS connection survives the loss of the node it is connected to, on a 3-node
cluster whose URLs carry the user's credentials (LOOM_NATS_URL's cluster form).

nats-py adds the servers a cluster announces to its pool as bare "host:port" URLs, beside the
configured "user:pw@host:port" ones; a URL's own credentials do not go with them. So the runtime
gives the credentials to the connection itself and the URLs none: before, a gateway whose node
was killed reconnected to an announced URL without credentials, was refused ("authentication
error") and stayed disconnected for good (seen in tests/test_nats_cluster.py)."""

from __future__ import annotations

import asyncio

import pytest
from faststream.nats import NatsBroker

from loom_common.devstack.nats_cluster import NatsCluster
from loom_common.runtime import _nats_security, _nats_servers
from loom_common.settings import ServiceSettings
from loom_common.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_urls_carry_no_credentials_and_the_connection_gets_them() -> None:
    settings = ServiceSettings(nats_url="nats://gw:s%40cret@127.0.0.1:4222, nats://gw:s%40cret@127.0.0.1:4223")
    assert _nats_servers(settings) == ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
    security = _nats_security(settings)
    assert (security.username, security.password) == ("gw", "s@cret")
    own = ServiceSettings(nats_url="nats://x:y@127.0.0.1:4222", nats_user="tools", nats_password="pw")
    assert (_nats_security(own).username, _nats_servers(own)) == ("tools", ["nats://127.0.0.1:4222"])
    assert _nats_security(ServiceSettings(nats_url="nats://127.0.0.1:4222")) is None


async def test_a_client_whose_node_dies_reconnects_to_another(tmp_path) -> None:
    cluster = NatsCluster(tmp_path / "nats", size=3).start()
    try:
        settings = ServiceSettings(nats_url=cluster.url)
        broker = NatsBroker(_nats_servers(settings), security=_nats_security(settings), max_reconnect_attempts=-1,
                            reconnect_time_wait=0.2)
        await broker.start()
        try:
            nc = broker.connection
            port = nc.connected_url.port
            assert all("@" not in s.netloc for s in nc.servers)  # announced or configured, one of each
            cluster.kill([n.port for n in cluster.nodes].index(port))

            async def reconnected() -> bool:
                if not nc.is_connected or nc.connected_url.port == port:
                    return False
                await nc.flush(timeout=2)  # a round trip on the new node
                return True

            await eventually(reconnected, "the connection on another node", timeout_s=60)
            got: asyncio.Queue = asyncio.Queue()
            sub = await nc.subscribe("loom.reconnect.test", cb=got.put)
            await nc.publish("loom.reconnect.test", b"after")
            assert (await asyncio.wait_for(got.get(), 30)).data == b"after"
            await sub.unsubscribe()
        finally:
            await broker.stop()
    finally:
        cluster.stop()
