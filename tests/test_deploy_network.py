"""The Kubernetes NetworkPolicies, evaluated: from the manifests (the base as written, each
overlay rendered with `kubectl kustomize`), which pod may open a connection to which pod and port,
and what the outside world reaches. Pure Python over the YAML: a small evaluator of the
NetworkPolicy rules (default allow until a policy selects a pod; a connection needs the source's
egress and the destination's ingress; peers by pod labels, namespace labels or IP block; ports by
number or container port name). Also: each pod reads only its own Secrets, and the NATS users in
the cluster's config are the ones `devstack.nats_auth` defines; in compose, each service mounts
only its own database DSN and NATS password, which `devstack.compose_secrets` generates.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from loom_common.devstack import compose_secrets, nats_auth

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from test_deploy import COMPOSE, K8S, OVERLAYS, _base_as_written, _by_kind, _kustomize

COMPOSE_DIR = COMPOSE.parent

NAMESPACE = "loom"
INTERNET = "203.0.113.7"  # TEST-NET-3: any address outside the cluster
SERVICES = ("gateway", "orchestrator", "rag", "inference", "tools")


@dataclass(frozen=True)
class Peer:
    """A pod (in `namespace`, with labels and container ports) or an address outside the cluster."""

    name: str
    namespace: str | None = None
    labels: dict = field(default_factory=dict, hash=False, compare=False)
    ports: dict = field(default_factory=dict, hash=False, compare=False)  # name -> number
    ip: str | None = None

    @property
    def in_cluster(self) -> bool:
        return self.namespace is not None


def _outside(ip: str) -> Peer:
    return Peer(f"ip:{ip}", ip=ip)


def _from_namespace(namespace: str) -> Peer:
    return Peer(f"{namespace}/any", namespace=namespace)


def _selects(selector: dict | None, labels: dict) -> bool:
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        value, present = labels.get(expr["key"]), expr["key"] in labels
        op = expr["operator"]
        if (op == "In" and value not in expr["values"]) or (op == "NotIn" and value in expr["values"]) \
                or (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _peer_matches(rule_peer: dict, peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        if peer.in_cluster:  # ipBlock is for addresses outside the cluster (pod IPs are ephemeral)
            return False
        block = rule_peer["ipBlock"]
        ip = ipaddress.ip_address(peer.ip)
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(c) for c in block.get("except", []))
    if not peer.in_cluster:
        return False
    ns_selector, pod_selector = rule_peer.get("namespaceSelector"), rule_peer.get("podSelector")
    ns_labels = {"kubernetes.io/metadata.name": peer.namespace}
    if ns_selector is not None and not _selects(ns_selector, ns_labels):
        return False
    if ns_selector is None and peer.namespace != NAMESPACE:  # a bare podSelector: the policy's namespace
        return False
    return pod_selector is None or _selects(pod_selector, peer.labels)


def _port_matches(rule_ports: list | None, port: int, dst: Peer) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        wanted = p.get("port")
        if wanted is None or wanted == port or (isinstance(wanted, str) and dst.ports.get(wanted) == port):
            return True
    return False


class Policies:
    def __init__(self, docs: list[dict]):
        self.policies = [d for d in docs if d["kind"] == "NetworkPolicy"]

    def _selecting(self, pod: Peer, kind: str) -> list[dict]:
        return [p for p in self.policies if kind in p["spec"].get("policyTypes", ["Ingress"])
                and _selects(p["spec"]["podSelector"], pod.labels)]

    def _ingress(self, src: Peer, dst: Peer, port: int) -> bool:
        if not dst.in_cluster or dst.namespace != NAMESPACE:
            return True  # not ours to police
        policies = self._selecting(dst, "Ingress")
        return not policies or any(
            (not rule.get("from") or any(_peer_matches(f, src) for f in rule["from"]))
            and _port_matches(rule.get("ports"), port, dst)
            for p in policies for rule in p["spec"].get("ingress") or [])

    def _egress(self, src: Peer, dst: Peer, port: int) -> bool:
        if not src.in_cluster or src.namespace != NAMESPACE:
            return True
        policies = self._selecting(src, "Egress")
        return not policies or any(
            (not rule.get("to") or any(_peer_matches(t, dst) for t in rule["to"]))
            and _port_matches(rule.get("ports"), port, dst)
            for p in policies for rule in p["spec"].get("egress") or [])

    def allows(self, src: Peer, dst: Peer, port: int) -> bool:
        return self._egress(src, dst, port) and self._ingress(src, dst, port)


def _workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")}


def _pods(docs: list[dict]) -> dict[str, Peer]:
    pods = {}
    for name, w in _workloads(docs).items():
        template = w["spec"]["template"]
        ports = {p.get("name", str(p["containerPort"])): p["containerPort"]
                 for c in template["spec"]["containers"] for p in c.get("ports", [])}
        pods[name] = Peer(name, NAMESPACE, template["metadata"]["labels"], ports)
    return pods


@pytest.fixture(scope="module", params=["base", *OVERLAYS])
def cluster(request) -> tuple[str, list[dict], Policies, dict[str, Peer]]:
    if request.param == "base":
        docs = _base_as_written()
    else:
        docs = _kustomize(K8S / "overlays" / request.param)
        if docs is None:
            pytest.skip("neither kubectl nor kustomize is installed: overlays not rendered")
    return request.param, docs, Policies(docs), _pods(docs)


def _reachable(policies: Policies, pods: dict[str, Peer], src: Peer) -> set[tuple[str, int]]:
    return {(dst.name, port) for dst in pods.values() for port in set(dst.ports.values())
            if dst is not src and policies.allows(src, dst, port)}


def test_every_pod_is_under_a_default_deny(cluster) -> None:
    _, _, policies, _ = cluster
    deny = [p for p in policies.policies if p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert deny, "no default-deny policy"


def test_from_outside_only_the_gateway_api_and_the_console_answer(cluster) -> None:
    _, _, policies, pods = cluster
    assert _reachable(policies, pods, _outside(INTERNET)) == {("gateway", 8080), ("console", 3000)}
    # A pod of another namespace (a compromised neighbour) gets no further than the internet does.
    assert _reachable(policies, pods, _from_namespace("default")) == {("gateway", 8080), ("console", 3000)}


def test_the_pods_reach_exactly_what_they_call(cluster) -> None:
    overlay, _, policies, pods = cluster
    expected = {
        "console": {("gateway", 8080)},
        "gateway": {("nats", 4222), ("inference", 50051), ("rag", 50052)},
        "orchestrator": {("nats", 4222), ("inference", 50051), ("rag", 50052), ("tools", 50053)},
        "rag": {("nats", 4222), ("inference", 50051)},
        "inference": {("nats", 4222)},
        "tools": {("nats", 4222)},
        "nats": set(),  # routes go to the other nats pods, the same workload here
        "db-bootstrap": set(),
    }
    if "postgres" in pods:  # the dev overlay's in-cluster database
        for name in (*SERVICES, "db-bootstrap"):
            expected[name] = expected[name] | {("postgres", 5432)}
        expected["postgres"] = set()
    if "redis" in pods:  # the optional Redis (components/redis): the gateway's alone
        expected["gateway"] = expected["gateway"] | {("redis", 6379)}
        expected["redis"] = set()
    for name, pod in pods.items():
        assert _reachable(policies, pods, pod) == expected[name], (overlay, name)
    nats = pods["nats"]
    assert policies.allows(nats, nats, 6222)  # cluster routes between the NATS pods


def test_the_model_service_is_separated_from_the_console(cluster) -> None:
    _, _, policies, pods = cluster
    console, inference = pods["console"], pods["inference"]
    for port in inference.ports.values():
        assert not policies.allows(console, inference, port)
        assert not policies.allows(_outside(INTERNET), inference, port)
    for port in console.ports.values():
        assert not policies.allows(inference, console, port)
    assert {src for src in pods if policies.allows(pods[src], inference, 50051)} == {"gateway", "orchestrator", "rag"}


def test_the_optional_redis_answers_the_gateway_alone(cluster) -> None:
    overlay, docs, policies, pods = cluster
    if "redis" not in pods:
        assert overlay != "dev", "the dev overlay includes components/redis"
        return
    redis = pods["redis"]
    assert {src for src in pods if policies.allows(pods[src], redis, 6379)} == {"gateway"}
    for outsider in (_outside(INTERNET), _from_namespace("default"), _from_namespace("monitoring")):
        assert not policies.allows(outsider, redis, 6379)
    # its password: a config file from its own Secret, never an argument or an environment variable
    pod = _workloads(docs)["redis"]["spec"]["template"]["spec"]
    assert [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v] and all(
        _is(v["secret"]["secretName"], "loom-redis") for v in pod["volumes"] if "secret" in v)
    assert not any("requirepass" in " ".join(c.get("args", [])) or c.get("env") for c in pod["containers"])


def test_tools_reach_the_internet_but_no_private_metadata_or_cluster_address(cluster) -> None:
    _, _, policies, pods = cluster
    tools = pods["tools"]
    assert policies.allows(tools, _outside(INTERNET), 443)
    for ip in ("169.254.169.254", "10.96.0.1", "172.17.0.2", "192.168.1.10", "100.64.0.1", "127.0.0.1"):
        assert not policies.allows(tools, _outside(ip), 80), ip


def test_monitoring_and_keda_reach_only_metrics_and_the_nats_monitor(cluster) -> None:
    _, docs, policies, pods = cluster
    monitoring, keda = _from_namespace("monitoring"), _from_namespace("keda")
    for name, w in _workloads(docs).items():
        port = w["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/port")
        if port:
            assert policies.allows(monitoring, pods[name], int(port)), name
    assert policies.allows(keda, pods["nats"], 8222)
    assert not policies.allows(monitoring, pods["nats"], 4222)
    assert not policies.allows(keda, pods["gateway"], 9080)
    assert not policies.allows(_outside(INTERNET), pods["gateway"], 9080)  # admin port: internal


# ---- each pod its own secrets ---------------------------------------------------------------

def _secret_refs(workload: dict) -> tuple[list[str], list[tuple[str, str]]]:
    """(envFrom Secret names, (Secret, key) pairs of secretKeyRefs) of a workload's containers."""
    env_from, keys = [], []
    for c in workload["spec"]["template"]["spec"]["containers"]:
        env_from += [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
        keys += [(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
                 for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]
    return env_from, keys


def _is(name: str, secret: str) -> bool:
    """`name` is `secret`, or its kustomize-generated form `secret-<hash>`."""
    return name == secret or re.fullmatch(re.escape(secret) + r"-[a-z0-9]{10}", name) is not None


def test_each_pod_reads_only_its_own_secrets(cluster) -> None:
    overlay, docs, _, _ = cluster
    for name, w in _workloads(docs).items():
        env_from, keys = _secret_refs(w)
        if name == "postgres":  # the dev database's own credentials
            assert all(_is(s, "postgres-credentials") for s in env_from) and not keys
            continue
        assert not env_from, (overlay, name, "envFrom of a whole Secret")
        for secret, key in keys:
            if name in SERVICES:
                ok = _is(secret, f"loom-{name}") or (_is(secret, "loom-service-token")
                                                      and key == "LOOM_SERVICE_TOKEN_SECRET")
            elif name == "nats":  # each service's NATS password, nothing else of theirs
                ok = key == "LOOM_NATS_PASSWORD" and any(_is(secret, f"loom-{s}") for s in SERVICES)
            elif name == "db-bootstrap":  # the superuser DSN and each role's DSN
                ok = _is(secret, "loom-db-admin") or (key == "LOOM_DATABASE_URL"
                                                      and any(_is(secret, f"loom-{s}") for s in SERVICES))
            else:  # the console holds no secret
                ok = False
            assert ok, (overlay, name, secret, key)
        if name in SERVICES:
            assert any(_is(s, f"loom-{name}") and k == "LOOM_DATABASE_URL" for s, k in keys), name
            assert any(_is(s, "loom-service-token") for s, _ in keys), name


def test_the_cluster_nats_users_are_the_ones_nats_auth_defines(cluster) -> None:
    _, docs, _, _ = cluster
    conf = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("nats-config"))
    expected = "".join("    " + line + "\n" for line in nats_auth.kubernetes_authorization().splitlines())
    assert "\n".join(line[4:] for line in expected.splitlines()) in conf["data"]["nats.conf"]
    (container,) = [c for c in _by_kind(docs, "StatefulSet")["nats"]["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "nats"]
    names = {e["name"] for e in container["env"]}
    assert {nats_auth.password_env(u) for u in nats_auth.PERMISSIONS} <= names


# ---- compose: each service its own database role and NATS user ------------------------------

def _compose(*names: str) -> dict:
    services: dict = {}
    for name in names:
        for svc, spec in yaml.safe_load((COMPOSE_DIR / name).read_text())["services"].items():
            merged = services.setdefault(svc, {})
            for key, value in spec.items():
                merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    return services


def _secret_mounts(svc: dict) -> list[tuple[str | None, bool]]:
    """(subpath, read_only) of each mount of the loom-secrets volume; subpath None = all of it."""
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict) and v.get("source") == "loom-secrets":
            out.append(((v.get("volume") or {}).get("subpath"), bool(v.get("read_only"))))
        elif isinstance(v, str) and v.startswith("loom-secrets:"):
            out.append((None, v.endswith(":ro")))
    return out


def test_compose_gives_each_service_only_its_own_credentials(tmp_path) -> None:
    services = _compose("docker-compose.yml", "redis.yml")
    mounts = {name: _secret_mounts(svc) for name, svc in services.items() if _secret_mounts(svc)}
    # each consumer mounts its own folder, read-only; the whole volume: the generator (once, before
    # anything starts) and the database bootstrap (the superuser's work, read-only)
    assert mounts == {**{s: [(s, True)] for s in SERVICES}, "postgres": [("postgres", True)],
                      "nats": [("nats", True)], "redis": [("redis", True)],
                      "secrets-init": [(None, False)], "db-bootstrap": [(None, True)]}
    text = "\n".join((COMPOSE_DIR / n).read_text() for n in ("docker-compose.yml", "redis.yml"))
    assert "loom:loom@" not in text and "POSTGRES_PASSWORD:" not in text  # no committed password
    for name in SERVICES:
        env = services[name]["environment"]
        assert env["LOOM_NATS_USER"] == name
        assert env["LOOM_DATABASE_URL_FILE"] == "/run/loom/database_url"
        assert env["LOOM_NATS_PASSWORD_FILE"] == "/run/loom/nats_password"
        assert not {"LOOM_DATABASE_URL", "LOOM_NATS_PASSWORD", "DB_PASSWORD"} & set(env), name
        assert services[name]["depends_on"]["db-bootstrap"]["condition"] == "service_completed_successfully"
    assert services["gateway"]["environment"]["LOOM_REDIS_URL_FILE"] == "/run/loom/redis_url"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/loom/password"
    assert services["nats"]["command"][:2] == ["-c", "/run/loom/nats.conf"]
    assert services["redis"]["command"][:2] == ["redis-server", "/run/loom/redis.conf"]
    assert str(compose_secrets.REDIS_UID) == services["redis"]["user"].split(":")[0]
    redis_override = yaml.safe_load((COMPOSE_DIR / "redis.yml").read_text())["services"]
    assert not any("ports" in svc for svc in redis_override.values())  # Redis is never published

    # What the generator lays out behind those mounts: each service's folder holds its own role's
    # DSN and its own NATS password, nothing of another service's.
    dsns = compose_secrets.write(tmp_path)
    generated = nats_auth.load_users(tmp_path / "generated").passwords
    for name in SERVICES:
        folder = {p.name: p.read_text().strip() for p in (tmp_path / name).iterdir()}
        assert set(folder) == {"database_url", "nats_password"} | ({"redis_url"} if name == "gateway" else set())
        dsn = urlsplit(folder["database_url"])
        assert (dsn.username, dsn.hostname, dsn.port, dsn.path) == (f"loom_{name}", "postgres", 5432, "/loom")
        assert folder["database_url"] == dsns[name] and folder["nats_password"] == generated[name]
        others = [generated[o] for o in SERVICES if o != name] + [generated["admin"]]
        assert not any(pw in "".join(folder.values()) for pw in others), name
        assert all((p.stat().st_mode & 0o077) == 0 for p in (tmp_path / name).iterdir())
    assert (tmp_path / "postgres" / "password").read_text().strip() in compose_secrets.admin_dsn(tmp_path)
    # a second run (a restart) keeps every password
    assert compose_secrets.write(tmp_path) == dsns


def test_compose_nats_users_and_permissions_are_the_embedded_stacks(tmp_path) -> None:
    compose_secrets.write(tmp_path)
    conf = json.loads((tmp_path / "nats" / "nats.conf").read_text())
    users = nats_auth.load_users(tmp_path / "generated")
    embedded = json.loads(nats_auth.render_config(port=4222, monitor_port=8222, store_dir=Path("/data"),
                                                  users=users))
    assert conf["authorization"] == embedded["authorization"]  # one table: devstack/nats_auth.py
    assert {u["user"] for u in conf["authorization"]["users"]} == {"admin", *SERVICES}
    assert all("permissions" in u for u in conf["authorization"]["users"] if u["user"] != "admin")
    assert conf["listen"] == "0.0.0.0:4222" and conf["jetstream"]["store_dir"] == "/data"
    nats = _compose("docker-compose.yml")["nats"]
    assert "nats-data:/data" in nats["volumes"]  # the store the config names is the volume
