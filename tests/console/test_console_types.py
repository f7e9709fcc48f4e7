"""The console's generated files match the gateway they were generated from: the TypeScript types
of `/openapi.json` (services/console/src/app/openapi.d.ts, by openapi-typescript) and the role
matrix (src/app/rbac.gen.json). Stale means a route or body changed without `npm run gen:api`
in services/console; run it and commit both files."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

CONSOLE = Path(__file__).resolve().parents[2] / "services" / "console"
GENERATED = CONSOLE / "src" / "app"


def _gen_api():
    spec = importlib.util.spec_from_file_location("console_gen_api", CONSOLE / "scripts" / "gen_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("console-gen")
    _gen_api().main(out)
    return out


def test_rbac_matrix_is_current(generated: Path) -> None:
    fresh = (generated / "src" / "app" / "rbac.gen.json").read_text()
    assert fresh == (GENERATED / "rbac.gen.json").read_text(), "stale: run `npm run gen:api` in services/console"


def test_openapi_types_are_current(generated: Path) -> None:
    tool = CONSOLE / "node_modules" / ".bin" / "openapi-typescript"
    assert shutil.which("node"), "Node 20 is needed for the console (see README)"
    assert tool.exists(), "run `make setup` (npm ci in services/console) first"
    out = generated / "openapi.d.ts"
    subprocess.run([str(tool), str(generated / "openapi.json"), "-o", str(out)], check=True, capture_output=True,
                   timeout=120, cwd=CONSOLE)
    assert out.read_text() == (GENERATED / "openapi.d.ts").read_text(), \
        "stale: run `npm run gen:api` in services/console and commit src/app/openapi.d.ts"
