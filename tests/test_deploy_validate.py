"""deploy/ proven by the tools that define its formats, offline.

- Kubernetes: the base and both overlays rendered with `kubectl kustomize` (Debian's `kubectl`
  package, which `make test` installs), every object validated strictly (unknown fields are
  errors) against the Kubernetes 1.32 OpenAPI schemas shipped in `kubernetes-validate`; KEDA's
  ScaledObject against its CRD's schema, vendored in tests/schemas (KEDA v2.20.2).
- Compose: docker-compose.yml (and the Redis override) against the Compose Specification's JSON
  schema, vendored in tests/schemas (compose-spec/compose-spec).
- Every container asks for CPU and memory and has a memory limit (no CPU limit in Kubernetes:
  CFS throttling stalls token streams; the request is what the scheduler reserves).

Each validator is also shown a broken object, so a validator that accepts anything fails here.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
COMPOSE_DIR = ROOT / "deploy" / "compose"
SCHEMAS = Path(__file__).parent / "schemas"
KUBERNETES_VERSION = "1.32.0"  # the version Debian's kubectl client is (kubectl version --client)
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())


def _render(path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the Kustomize overlays: apt-get install kubectl (make test does)"
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"kubectl kustomize {path}: {out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


@pytest.fixture(scope="module", params=["base", *OVERLAYS])
def rendered(request) -> tuple[str, list[dict]]:
    path = K8S / "base" if request.param == "base" else K8S / "overlays" / request.param
    return request.param, _render(path)


def _strict(schema):
    """A CRD's structural schema as the API server reads it with `--validate=strict`: an object
    that lists its properties accepts no other field unless it says it preserves unknown ones."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _crd_validators() -> dict[tuple[str, str], jsonschema.Validator]:
    """(apiVersion, kind) -> validator of the vendored CRDs' served versions."""
    out = {}
    for path in SCHEMAS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = _strict(version["schema"]["openAPIV3Schema"])
                schema.setdefault("required", [])
                out[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = \
                    jsonschema.Draft7Validator(schema)
    return out


CRDS = _crd_validators()


def _problems(doc: dict) -> list[str]:
    """Why `doc` is not a valid object of Kubernetes 1.32 (or of a vendored CRD); [] if it is."""
    crd = CRDS.get((doc.get("apiVersion"), doc.get("kind")))
    if crd is not None:
        return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in crd.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"no schema for {doc.get('apiVersion')} {doc.get('kind')} in Kubernetes {KUBERNETES_VERSION}: {e}"]
    except kubernetes_validate.ValidationError as e:
        return [f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}"]
    return []


def test_every_rendered_object_is_valid_for_kubernetes_1_32_and_keda(rendered) -> None:
    name, docs = rendered
    assert len(docs) >= 20, name
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "StatefulSet", "Service", "NetworkPolicy", "ScaledObject", "Job"} <= kinds
    problems = {f"{d['kind']}/{d['metadata']['name']}": p for d in docs if (p := _problems(d))}
    assert not problems, f"{name}: {json.dumps(problems, indent=1)}"


def test_the_validators_refuse_broken_objects(rendered) -> None:
    _, docs = rendered
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    deployment["spec"]["replicas"] = "two"
    assert _problems(deployment)
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["resourcez"] = {}  # a typo, strict mode
    assert _problems(deployment)
    scaled = copy.deepcopy(next(d for d in docs if d["kind"] == "ScaledObject"))
    scaled["spec"]["maxReplicaCount"] = "ten"
    assert _problems(scaled)
    scaled = copy.deepcopy(next(d for d in docs if d["kind"] == "ScaledObject"))
    scaled["spec"]["triggerz"] = scaled["spec"].pop("triggers")  # unknown field, required one missing
    assert len(_problems(scaled)) >= 2
    assert _problems({"apiVersion": "example.com/v1", "kind": "Unknown", "metadata": {"name": "x"}})


def _pod_specs(docs: list[dict]):
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec:
            yield f"{d['kind']}/{d['metadata']['name']}", spec["template"]["spec"]


def test_every_kubernetes_container_has_requests_and_a_memory_limit(rendered) -> None:
    name, docs = rendered
    seen = 0
    for workload, pod in _pod_specs(docs):
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            assert {"cpu", "memory"} <= set(requests), (name, workload, container["name"])
            assert "memory" in limits, (name, workload, container["name"])
            seen += 1
    assert seen >= 9


# ---- compose ---------------------------------------------------------------------------------

COMPOSE_FILES = sorted(COMPOSE_DIR.glob("*.yml"))


@pytest.fixture(scope="module")
def compose_schema() -> jsonschema.Validator:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_files_follow_the_compose_specification(path: Path, compose_schema) -> None:
    doc = yaml.safe_load(path.read_text())
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in compose_schema.iter_errors(doc)]
    assert not errors, errors


def test_the_compose_schema_refuses_broken_files(compose_schema) -> None:
    doc = yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())
    broken = copy.deepcopy(doc)
    broken["services"]["gateway"]["restart_policy"] = "always"  # not a compose key
    assert list(compose_schema.iter_errors(broken))
    broken = copy.deepcopy(doc)
    broken["services"]["gateway"]["depends_on"]["nats"]["condition"] = "service_ready"
    assert list(compose_schema.iter_errors(broken))


def test_every_compose_container_reserves_and_limits_memory() -> None:
    checked = 0
    for path in COMPOSE_FILES:
        for name, svc in yaml.safe_load(path.read_text()).get("services", {}).items():
            if "image" not in svc and "build" not in svc:
                continue  # an override's partial entry (more environment for a service defined above)
            resources = svc.get("deploy", {}).get("resources", {})  # YAML merge keys resolved
            assert {"cpus", "memory"} <= set(resources.get("limits", {})), (path.name, name)
            assert "memory" in resources.get("reservations", {}), (path.name, name)
            checked += 1
    assert checked >= 13
