"""Debian's `redis-server` as a process on a free loopback port, alone or as a cluster, for the
tests of the Redis cache (and to try it locally). `make test` installs the package when it is
missing (Makefile, like chromium); `redis_binary()` says why when it cannot be found.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from loom_common.devstack import infra


def redis_binary(name: str = "redis-server") -> str | None:
    return shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = field(default_factory=infra.free_port)
    cluster: bool = False
    bus_port: int = field(default_factory=infra.free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        # No persistence: a restart comes back empty, the harder case for the counters (they
        # are seeded again from Postgres). Loopback only, protected mode on.
        cmd = [redis_binary() or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
               "--dir", str(self.data_dir), "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--logfile", str(self.data_dir / "redis.log")]
        if self.cluster:
            cmd += ["--cluster-enabled", "yes", "--cluster-config-file", str(self.data_dir / "nodes.conf"),
                    "--cluster-node-timeout", "5000",
                    # its own bus port (the default, port + 10000, may be past 65535 or taken)
                    "--cluster-port", str(self.bus_port)]
        return cmd

    def start(self, timeout_s: float = 15.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        infra.wait_until(lambda: self.ping(), timeout_s, "redis-server")
        return self

    def ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise infra.GaveUp(f"redis-server exited with {self.proc.returncode}")
        return self.cli("PING").strip() == "PONG"

    def cli(self, *args: str) -> str:
        r = subprocess.run([redis_binary("redis-cli") or "redis-cli", "-p", str(self.port), *args],
                           capture_output=True, text=True, timeout=10)
        return r.stdout

    def stop(self) -> None:
        infra.stop_process(self.proc)
        self.proc = None


def start_cluster(root: Path, masters: int = 3, timeout_s: float = 30.0) -> list[EmbeddedRedis]:
    """`masters` cluster-mode servers joined with `redis-cli --cluster create` (no replicas):
    the 16384 slots spread over them."""
    nodes = [EmbeddedRedis(root / f"node{i}", cluster=True).start() for i in range(masters)]
    try:
        subprocess.run([redis_binary("redis-cli") or "redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{n.port}" for n in nodes), "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        # Ready when every node knows every other and sees all slots served, and a client
        # following redirections can write a key on each node's slots.
        ready = ("cluster_state:ok", f"cluster_known_nodes:{masters}", "cluster_slots_ok:16384")
        deadline = time.monotonic() + timeout_s
        while not (all(all(r in n.cli("CLUSTER", "INFO") for r in ready) for n in nodes)
                   and all(n.cli("-c", "SET", f"loom:probe:{i}", "1").strip() == "OK"
                           for n in nodes for i in range(masters * 4))):
            if time.monotonic() > deadline:
                raise infra.GaveUp("redis cluster did not become ready")
            time.sleep(0.1)
    except BaseException:
        for n in nodes:
            n.stop()
        raise
    return nodes
