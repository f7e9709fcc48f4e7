"""deploy/ stays in step with the code it deploys.

Fast and offline (no docker, no cluster): every YAML/JSON file parses; compose runs the five
services plus NATS, Postgres, Prometheus and Grafana with healthchecks on /readyz; every
Kubernetes Deployment has /readyz and /healthz probes and a grace period that covers its drain;
KEDA scales on the stream/consumer pairs `loom_common.bus` declares; Prometheus scrapes the HTTP
ports of `loom_common.devstack.ports`; the alert rules include HighModelLatency; and the metric
names the alerts and dashboard query exist in the services that export them.

The Kubernetes overlays are rendered with `kubectl kustomize` (or `kustomize build`) when one is
on PATH; without either, the base's files are read directly and the overlay checks are skipped.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from loom_common import bus
from loom_common.devstack import ports

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
MONITORING = DEPLOY / "monitoring"
K8S = DEPLOY / "k8s"

# The canonical ports (ports.py shifts them all by LOOM_STACK_PORT_OFFSET when that is set).
HTTP = {s.name: s.http - ports.OFFSET for s in ports.SERVICES}
GRPC = {s.name: s.grpc - ports.OFFSET for s in ports.SERVICES if s.grpc is not None}
# /readyz and /metrics: on the admin port where a service has one (the gateway), else on http.
ADMIN = {s.name: (s.admin or s.http) - ports.OFFSET for s in ports.SERVICES}
SERVICES = sorted(HTTP)
NATS_MONITOR = ports.NATS_MONITOR - ports.OFFSET


def _yaml_docs(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _env(container_env) -> dict[str, str]:
    """Compose `environment` (map or list) or a Kubernetes `env` list, as a dict of plain values."""
    if isinstance(container_env, dict):
        return {k: "" if v is None else str(v) for k, v in container_env.items()}
    out = {}
    for item in container_env or []:
        if isinstance(item, str):
            key, _, value = item.partition("=")
            out[key] = value
        elif "value" in item:
            out[item["name"]] = str(item["value"])
    return out


def _drain_budget_s(env: dict[str, str], service: str, pre_stop_s: int = 0) -> float:
    """Worst-case drain (runtime.py): broker grace, then gRPC grace, then HTTP close (5 s)."""
    grace = float(env.get("LOOM_GRACEFUL_TIMEOUT_S", "15"))
    return pre_stop_s + grace * (2 if service in GRPC else 1) + 5


def _seconds(value: str | int) -> float:
    m = re.fullmatch(r"(\d+)(s|m)?", str(value))
    assert m, f"unparsed duration {value!r}"
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


# ---- every file parses ---------------------------------------------------------------------


def test_every_yaml_and_json_file_under_deploy_parses() -> None:
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml", ".json"})
    assert len(files) >= 10, files
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            assert _yaml_docs(path), f"{path} is empty"


# ---- docker compose --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_defines_the_services_and_the_infrastructure(compose: dict) -> None:
    assert set(SERVICES) | {"nats", "postgres", "prometheus", "grafana"} <= set(compose["services"])


def test_compose_builds_each_service_from_the_one_dockerfile_at_the_repo_root(compose: dict) -> None:
    """One parameterised Dockerfile for the five Python services: the build arg SERVICE picks one."""
    for name in SERVICES:
        build = compose["services"][name]["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT, name
        assert build["dockerfile"] == "Dockerfile"
        assert build["args"] == {"SERVICE": name}, name
    assert compose["services"]["secrets-init"]["build"]["args"] == {"SERVICE": "gateway"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG SERVICE" in dockerfile and "COPY services/${SERVICE} services/${SERVICE}" in dockerfile
    for name in SERVICES:  # the image refuses an unknown SERVICE: each one is named in its case
        assert name in dockerfile.split("esac")[0], name
        assert not (ROOT / "services" / name / "Dockerfile").exists(), name


def test_compose_services_check_readyz_and_get_the_shared_settings(compose: dict) -> None:
    for name in SERVICES:
        svc = compose["services"][name]
        check = " ".join(svc["healthcheck"]["test"])
        assert f"127.0.0.1:{ADMIN[name]}/readyz" in check, name
        env = _env(svc["environment"])
        assert env["LOOM_NATS_URL"].startswith("nats://nats:")
        # its own DSN from a file of its own (test_deploy_network: compose credentials)
        assert env["LOOM_DATABASE_URL_FILE"].startswith("/run/loom/") and "LOOM_DATABASE_URL" not in env
        for target, key in (("inference", "LOOM_INFERENCE_ADDR"), ("rag", "LOOM_RAG_ADDR"),
                            ("tools", "LOOM_TOOLS_ADDR")):
            assert env[key] == f"{target}:{GRPC[target]}", (name, key)
        assert env[f"LOOM_{name.upper()}_HTTP_HOST"] == "0.0.0.0"
        # compose's default stop grace (10 s) would SIGKILL a service mid-drain.
        assert _seconds(svc["stop_grace_period"]) >= _drain_budget_s(env, name), name


def test_compose_publishes_only_the_gateway_and_the_console(compose: dict) -> None:
    """NATS, Postgres, the gRPC ports, the admin ports and 11434 stay on the compose network;
    Prometheus and Grafana are published on the host's loopback alone."""
    public = {}
    for name, svc in compose["services"].items():
        for mapping in svc.get("ports", []):
            if not str(mapping).startswith("127.0.0.1:"):
                public[name] = [*public.get(name, []), str(mapping)]
    assert public == {"gateway": [f"{HTTP['gateway']}:{HTTP['gateway']}"],
                      "console": [f"{ports.CONSOLE - ports.OFFSET}:{ports.CONSOLE - ports.OFFSET}"]}
    assert f"# ports: [\"{HTTP['inference']}:{HTTP['inference']}\"]" in COMPOSE.read_text()  # by choice


def test_compose_services_share_only_the_grpc_signing_key(compose: dict) -> None:
    """The five services sign and check internal gRPC calls with one key: a volume at
    $LOOM_HOME/secrets that they alone mount (service_auth generates the key into it once)."""
    mounting = {name for name, svc in compose["services"].items()
                if any(str(v).startswith("service-token:") for v in svc.get("volumes", []))}
    assert mounting == set(SERVICES)
    for name in SERVICES:
        home = _env(compose["services"][name]["environment"])["LOOM_HOME"]
        assert f"service-token:{home}/secrets" in compose["services"][name]["volumes"], name


def test_compose_serves_the_console_on_3000_proxying_the_gateway(compose: dict) -> None:
    console = compose["services"]["console"]
    assert console["build"]["dockerfile"] == "services/console/Dockerfile"
    assert (ROOT / console["build"]["dockerfile"]).exists()
    assert any(str(p).startswith(f"{ports.CONSOLE - ports.OFFSET}:") for p in console["ports"])
    assert "127.0.0.1:3000/readyz" in " ".join(console["healthcheck"]["test"])
    assert _env(console["environment"])["LOOM_GATEWAY_URL"] == f"http://gateway:{HTTP['gateway']}"


def test_compose_infrastructure(compose: dict) -> None:
    s = compose["services"]
    assert s["nats"]["image"].startswith("nats:") and "-js" in s["nats"]["command"]
    assert any(":/data" in v for v in s["nats"]["volumes"])
    assert s["postgres"]["image"].startswith("pgvector/pgvector:")
    assert "pg_isready" in " ".join(s["postgres"]["healthcheck"]["test"])
    assert s["postgres"]["volumes"]
    for name in ("prometheus", "grafana"):
        for volume in s[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"


# ---- Prometheus, alerts, Grafana ------------------------------------------------------------


def test_prometheus_scrapes_every_service_http_port() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
            for job in config["scrape_configs"]}
    for name in SERVICES:
        assert jobs.get(name) == [f"{name}:{ADMIN[name]}"], name
    assert "nats" in jobs
    assert [Path(p).name for p in config["rule_files"]] == ["alerts.yml"]


def _alerts() -> dict[str, dict]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_alert_rules_include_high_model_latency_and_the_operational_ones() -> None:
    alerts = _alerts()
    assert {"HighModelLatency", "ServiceDown", "JetStreamConsumerBacklog", "HighRunFailureRate",
            "DeadLetters"} <= set(alerts)
    latency = alerts["HighModelLatency"]
    assert "loom_inference_time_to_first_token_seconds" in latency["expr"]
    assert re.search(r">\s*0\.5\b", latency["expr"])
    assert latency["for"] == "5m" and latency["labels"]["severity"] == "warning"
    assert "up" in alerts["ServiceDown"]["expr"] and "== 0" in alerts["ServiceDown"]["expr"]
    backlog = alerts["JetStreamConsumerBacklog"]["expr"]
    for consumer in bus.ALL_CONSUMERS:
        assert consumer.durable in backlog
    assert bus.dead_letter("") in alerts["DeadLetters"]["expr"].replace("\\\\", "")


def test_grafana_provisioning_matches_the_dashboard_and_compose() -> None:
    datasources = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {d["uid"] for d in datasources["datasources"]}
    providers = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/loom.yml").read_text())
    grafana_volumes = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]["volumes"]
    for provider in providers["providers"]:
        assert any(v.split(":")[1] == provider["options"]["path"] for v in grafana_volumes)
    dashboard = json.loads((MONITORING / "grafana/dashboards/loom.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] in uids, panel["title"]
    wanted = ["loom_inference_time_to_first_token_seconds", "loom_inference_generation_tokens_total",
              "loom_inference_num_requests_running", "loom_inference_num_requests_waiting",
              "loom_orchestrator_runs_started_total", "loom_orchestrator_node_seconds",
              "jetstream_consumer_num_pending", "loom_rag_retrieval_seconds", "loom_http_requests_total",
              "loom_http_request_duration_seconds"]
    for metric in wanted:
        assert any(metric in e for e in exprs), metric


def _declared_metric_names() -> set[str]:
    names: set[str] = set()
    for src in [*(ROOT / "services").glob("*/src"), ROOT / "libs" / "common" / "src"]:
        for path in src.rglob("*.py"):
            names.update(re.findall(r"""["'](loom_[a-z0-9_]+)["']""", path.read_text()))
    return names


# Metrics of exporters other than Loom's services, by the job that scrapes them in each
# deployment (names from each exporter's documentation: prometheus-nats-exporter's JetStream
# collector, cAdvisor's container metrics, kube-state-metrics' pod metrics).
EXTERNAL_METRICS = {
    "up": ("prometheus", "prometheus"),  # Prometheus' own per target
    "jetstream_consumer_num_pending": ("nats", "nats"),
    "jetstream_consumer_num_ack_pending": ("nats", "nats"),
    "container_cpu_usage_seconds_total": ("cadvisor", "kubelet-cadvisor"),
    "container_memory_working_set_bytes": ("cadvisor", "kubelet-cadvisor"),
    "container_spec_memory_limit_bytes": ("cadvisor", "kubelet-cadvisor"),
    "kube_pod_container_resource_requests": (None, "kube-state-metrics"),
    "kube_pod_container_resource_limits": (None, "kube-state-metrics"),
}
_PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "delta", "deriv", "abs",
    "histogram_quantile", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "topk", "bottomk", "clamp_min", "clamp_max", "avg_over_time",
    "max_over_time", "min_over_time", "label_replace", "vector", "scalar", "time", "humanize",
}


def _metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: its identifiers less functions, keywords,
    label matchers, grouping labels, ranges, strings and Grafana's variables."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\w+", "", expr)
    return {t for t in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr) if t not in _PROMQL_WORDS}


def _queries() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana/dashboards/loom.json").read_text())
    return [rule["expr"] for rule in _alerts().values()] + [
        t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_metric_names_of_a_query_are_found() -> None:
    assert _metric_names('sum by (le, job) (rate(loom_x_bucket{a="b"}[5m])) / on(pod) '
                         'group_left max(kube_y{resource="cpu"}) > 0.5') == {"loom_x_bucket", "kube_y"}


def test_queried_metrics_exist_in_the_services_that_export_them() -> None:
    """A renamed metric breaks this test, not a dashboard nobody looks at: every metric an alert
    or a panel reads is declared by a Loom service (or loom_common), or comes from an exporter
    that both scrape configs scrape."""
    queried = set().union(*map(_metric_names, _queries()))
    # The bus's message counts (loom_received_processed_messages_total, loom_published_messages_total)
    # keep FastStream's series names but are declared by loom_common.bus_telemetry, like the rest.
    declared = _declared_metric_names()
    compose_config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    compose_jobs = {j["job_name"] for j in compose_config["scrape_configs"]}
    k8s_config = yaml.safe_load((MONITORING / "prometheus-k8s.yml").read_text())
    k8s_jobs = {j["job_name"] for j in k8s_config["scrape_configs"]} | {"prometheus", "nats"}  # nats: by annotation
    missing = []
    for name in sorted(queried):
        if name.startswith("loom_"):
            base = re.sub(r"_(bucket|sum|count|total)$", "", name)
            if name not in declared and base not in declared:
                missing.append(name)
            continue
        assert name in EXTERNAL_METRICS, f"{name}: exported by whom? (add it to EXTERNAL_METRICS)"
        compose_job, k8s_job = EXTERNAL_METRICS[name]
        assert compose_job is None or compose_job in compose_jobs, (name, compose_job)
        assert k8s_job in k8s_jobs, (name, k8s_job)
    assert not missing, f"queried but exported by no service: {missing}"


def test_monitoring_covers_what_the_seed_lists() -> None:
    """Model QPS and latency, container CPU and memory, the database pools (in use, idle,
    waits), the JetStream backlog; HighModelLatency at 500 ms over 5 minutes (above)."""
    queried = set().union(*map(_metric_names, _queries()))
    for metric in ("loom_inference_request_success_total", "loom_inference_time_to_first_token_seconds_bucket",
                   "container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
                   "loom_db_pool_connections", "loom_db_pool_waiting", "jetstream_consumer_num_pending"):
        assert metric in queried, metric
    dashboard = json.loads((MONITORING / "grafana/dashboards/loom.json").read_text())
    pool_exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", []) if "loom_db_pool" in t["expr"]]
    assert any("state" in e for e in pool_exprs)  # in use and idle apart
    assert {"DatabasePoolSaturated", "ContainerMemoryNearLimit"} <= set(_alerts())


# ---- Kubernetes ----------------------------------------------------------------------------


def _kustomize(path: Path) -> list[dict] | None:
    if shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", str(path)]
    elif shutil.which("kustomize"):
        cmd = ["kustomize", "build", str(path)]
    else:
        return None
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d is not None]


def _base_as_written() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())
    docs = [d for name in kustomization["resources"] for d in _yaml_docs(K8S / "base" / name)]
    for doc in docs:
        if doc["kind"] != "Namespace":
            doc["metadata"].setdefault("namespace", kustomization["namespace"])
    return docs


OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())


@pytest.fixture(scope="module", params=["base", *OVERLAYS])
def manifests(request) -> tuple[str, list[dict]]:
    if request.param == "base":
        return "base", _base_as_written()
    rendered = _kustomize(K8S / "overlays" / request.param)
    if rendered is None:
        pytest.skip("neither kubectl nor kustomize is installed: overlays not rendered")
    return request.param, rendered


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_overlays_exist() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


def test_every_deployment_has_probes_ports_and_a_grace_period_covering_its_drain(manifests) -> None:
    _, docs = manifests
    deployments = _by_kind(docs, "Deployment")
    assert set(SERVICES) <= set(deployments)
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]
        for container in pod["spec"]["containers"]:
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        if name not in HTTP:
            continue
        (container,) = pod["spec"]["containers"]
        env = _env(container["env"])
        assert env[f"LOOM_{name.upper()}_HTTP_HOST"] == "0.0.0.0"
        container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container_ports["http"] == HTTP[name]
        if name in GRPC:
            assert container_ports["grpc"] == GRPC[name]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(ADMIN[name])
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pre_stop_s = int(pre_stop[-1]) if pre_stop[:1] == ["sleep"] else 0
        assert pod["spec"]["terminationGracePeriodSeconds"] >= _drain_budget_s(env, name, pre_stop_s), name


def test_services_expose_the_default_ports_and_the_shared_config_points_at_them(manifests) -> None:
    _, docs = manifests
    services = _by_kind(docs, "Service")
    for name in SERVICES:
        exposed = {p["name"]: p["port"] for p in services[name]["spec"]["ports"]}
        assert exposed["http"] == HTTP[name]
        if name in GRPC:
            assert exposed["grpc"] == GRPC[name]
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("loom-config")]
    for target in GRPC:
        assert config["data"][f"LOOM_{target.upper()}_ADDR"] == f"{target}:{GRPC[target]}"
    assert config["data"]["LOOM_NATS_URL"] == "nats://nats:4222"


def test_console_deployment_and_service_on_3000_point_at_the_gateway(manifests) -> None:
    _, docs = manifests
    (container,) = _by_kind(docs, "Deployment")["console"]["spec"]["template"]["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["http"] == ports.CONSOLE - ports.OFFSET
    assert _env(container["env"])["LOOM_GATEWAY_URL"] == f"http://gateway:{HTTP['gateway']}"
    exposed = {p["name"]: p["port"] for p in _by_kind(docs, "Service")["console"]["spec"]["ports"]}
    assert exposed["http"] == ports.CONSOLE - ports.OFFSET


def test_gateway_scales_on_cpu(manifests) -> None:
    _, docs = manifests
    hpa = _by_kind(docs, "HorizontalPodAutoscaler")["gateway"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway"
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


def test_keda_scales_the_workers_on_the_consumers_bus_declares(manifests) -> None:
    _, docs = manifests
    nats = _by_kind(docs, "StatefulSet")["nats"]
    triggers = {}
    for so in _by_kind(docs, "ScaledObject").values():
        for trigger in so["spec"]["triggers"]:
            if trigger["type"] != "nats-jetstream":
                continue
            meta = trigger["metadata"]
            key = (meta["stream"], meta["consumer"])
            triggers[key] = so["spec"]["scaleTargetRef"]["name"]
            # KEDA runs in its own namespace: the headless NATS Service's full name, monitor port.
            namespace = so["metadata"]["namespace"]
            assert meta["natsServerMonitoringEndpoint"] == \
                f"{nats['spec']['serviceName']}.{namespace}.svc.cluster.local:{NATS_MONITOR}"
    # The workers scale on their backlog; the gateway, which also consumes (run outcomes), scales
    # on CPU with its HTTP load (its HPA, above): its backlog is alerted on, not scaled on.
    expected = {(c.stream.name, c.durable): c.durable.split("-")[0] for c in bus.ALL_CONSUMERS
                if not c.durable.startswith("gateway-")}
    assert triggers == expected


def test_orchestrator_workers_have_a_disruption_budget(manifests) -> None:
    overlay, docs = manifests
    if overlay == "dev":
        pytest.skip("dev runs one replica of each worker and drops the budgets")
    pdb = _by_kind(docs, "PodDisruptionBudget")["orchestrator"]
    assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "orchestrator"}


def test_nats_is_a_three_node_jetstream_cluster(manifests) -> None:
    _, docs = manifests
    nats = _by_kind(docs, "StatefulSet")["nats"]
    replicas = nats["spec"]["replicas"]
    assert replicas == 3
    conf = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("nats-config"))
    text = conf["data"]["nats.conf"]
    assert re.search(r"jetstream\s*\{[^}]*store_dir", text)
    for i in range(replicas):
        assert f"nats://nats-{i}.{nats['spec']['serviceName']}:6222" in text
    assert "server_name: $POD_NAME" in text  # KEDA finds consumer leaders by server name
    assert nats["spec"]["volumeClaimTemplates"]


def test_inference_runs_on_the_gpu_pool_except_in_dev(manifests) -> None:
    overlay, docs = manifests
    pod = _by_kind(docs, "Deployment")["inference"]["spec"]["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    if overlay == "dev":
        assert "nvidia.com/gpu" not in limits and "nodeSelector" not in pod
        return
    assert limits["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])


def test_inference_config_toml_is_valid_for_the_service(manifests) -> None:
    _, docs = manifests
    conf = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("inference-config"))
    data = tomllib.loads(conf["data"]["config.toml"])
    settings = pytest.importorskip("loom_inference.settings")
    settings.Performance(**data.get("performance", {}))
    for route in data.get("models", []):
        settings.ModelRoute(**route)
