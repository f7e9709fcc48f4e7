"""Architecture rules that are cheap to check on every run.

Services never import each other: each may import only loom_common, the generated protos
(`loom.*`) and third-party libraries.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists())


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_every_service_is_a_package_of_its_own() -> None:
    assert SERVICES == ["gateway", "inference", "orchestrator", "rag", "tools"]
    for name in SERVICES:
        base = ROOT / "services" / name
        assert (base / "src" / f"loom_{name}" / "__init__.py").exists()
        assert f'loom-{name} = "loom_{name}.main:main"' in (base / "pyproject.toml").read_text()
        assert (base / "tests").is_dir()
    # one image recipe for all five (the root Dockerfile, SERVICE as a build arg)
    assert "ARG SERVICE" in (ROOT / "Dockerfile").read_text()


def test_no_service_imports_another_service() -> None:
    offenders = []
    for name in SERVICES:
        others = {f"loom_{o}" for o in SERVICES if o != name}
        for path in (ROOT / "services" / name).rglob("*.py"):
            bad = _imports(path) & others
            if bad:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_common_imports_no_service() -> None:
    services = {f"loom_{s}" for s in SERVICES}
    for path in (ROOT / "libs" / "common").rglob("*.py"):
        assert not (_imports(path) & services), path


def test_subject_literals_live_only_in_the_bus_module() -> None:
    """No module but loom_common/bus.py spells a subject of the bus."""
    needles = ('"runs.requested"', '"documents.ingest"', 'f"run.{', '"run.*', '.events"', '"dlq.', '"runs.cancel')
    for path in [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/common/src/**/*.py")]:
        if path.name == "bus.py":
            continue
        text = path.read_text()
        assert not any(n in text for n in needles), f"{path} spells a bus subject"


def test_domain_code_may_not_import_a_driver() -> None:
    """import-linter sees external packages, and one contract forbids asyncpg, grpc, FastStream
    and nats to the services' domain code, with no exceptions (SQL lives in store/ layers)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["include_external_packages"] is True
    [drivers] = [c for c in config["contracts"] if c["name"].startswith("Domain code imports no database")]
    assert {"asyncpg", "grpc", "faststream", "nats"} <= set(drivers["forbidden_modules"])
    assert "loom_gateway.domain" in drivers["source_modules"] and "loom_tools.domain" in drivers["source_modules"]
    assert not drivers.get("ignore_imports") and drivers.get("allow_indirect_imports") is True
