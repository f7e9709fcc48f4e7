"""deploy/llm-engine/install.sh into a fake root: the virtualenv from `make wheelhouse`'s
wheels, the config written once, the hardened unit (checked by `systemd-analyze verify`),
idempotent re-runs, uninstall and purge; and the config precedence `llm-engine` documents:
flags > environment > $LOOM_HOME/inference/config.toml > /etc/llm-engine/config.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from loom_inference.settings import InferenceSettings

ROOT = Path(__file__).resolve().parents[3]
INSTALL = ROOT / "deploy" / "llm-engine" / "install.sh"


def test_inference_config_precedence_flags_env_home_etc(tmp_path, monkeypatch) -> None:
    etc = tmp_path / "etc-config.toml"
    etc.write_text('grpc_port = 1111\n[network]\nport = 1000\nbind_address = "127.0.0.2"\n'
                   '[performance]\nmax_parallel = 3\nn_ctx = 1024\nkeep_alive = "1m"\n')
    home = tmp_path / "home"
    (home / "inference").mkdir(parents=True)
    (home / "inference" / "config.toml").write_text("[network]\nport = 2000\n[performance]\nn_ctx = 2048\n")
    monkeypatch.setenv("LOOM_INFERENCE_SYSTEM_CONFIG", str(etc))
    monkeypatch.setenv("LOOM_HOME", str(home))
    for var in ("LOOM_INFERENCE_CONFIG", "LOOM_INFERENCE_HTTP_PORT", "LOOM_INFERENCE_GRPC_PORT",
                "LOOM_INFERENCE_PERFORMANCE__N_CTX", "LOOM_INFERENCE_PERFORMANCE__MAX_PARALLEL"):
        monkeypatch.delenv(var, raising=False)
    s = InferenceSettings()
    # $LOOM_HOME's file over /etc's, key by key; what it does not set comes from /etc
    assert (s.http_port, s.performance.n_ctx) == (2000, 2048)
    assert (s.grpc_port, s.http_host, s.performance.max_parallel, s.performance.keep_alive) == (
        1111, "127.0.0.2", 3, "1m")
    monkeypatch.setenv("LOOM_INFERENCE_HTTP_PORT", "3000")
    monkeypatch.setenv("LOOM_INFERENCE_PERFORMANCE__N_CTX", "4096")
    s = InferenceSettings()
    assert (s.http_port, s.performance.n_ctx, s.performance.max_parallel) == (3000, 4096, 3)
    assert InferenceSettings(http_port=4000).http_port == 4000  # `serve --port`: above the environment
    monkeypatch.setenv("LOOM_INFERENCE_SYSTEM_CONFIG", str(tmp_path / "absent.toml"))
    assert InferenceSettings().grpc_port == 50051  # no /etc file: the default


def _install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_inference_install_script_into_a_fake_root_is_idempotent_and_uninstalls(tmp_path) -> None:
    house = tmp_path / "wheelhouse"
    made = subprocess.run(["make", "-s", "wheelhouse", f"WHEELHOUSE={house}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "root"
    # Only Loom's wheels from the wheelhouse (a real install takes the rest from PyPI; the test
    # cannot download torch), the rest borrowed below from the test's own environment.
    pip = {"LLM_ENGINE_PIP_OPTS": "--no-deps --no-index"}
    first = _install("--root", str(root), "--wheelhouse", str(house), "--python", sys.executable, env=pip)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "user llm-engine not created" in first.stdout and "wrote" in first.stdout

    venv = root / "opt" / "llm-engine" / "venv"
    config = root / "etc" / "llm-engine" / "config.toml"
    unit = root / "etc" / "systemd" / "system" / "llm-engine.service"
    assert (venv / "bin" / "llm-engine").is_file() and oct(config.stat().st_mode & 0o777) == "0o640"
    text = unit.read_text()
    for line in ("ExecStart=/opt/llm-engine/venv/bin/llm-engine serve", "User=llm-engine", "Restart=on-failure",
                 "NoNewPrivileges=true", "ProtectSystem=strict", "PrivateTmp=true", "LimitNOFILE=65536",
                 "MemoryMax=90%", "StateDirectory=llm-engine", "WantedBy=multi-user.target"):
        assert line in text

    # the installed command runs (its dependencies borrowed from this test's environment)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    lib = subprocess.run([str(venv / "bin" / "llm-engine"), "library", "list"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "LOOM_HOME": str(tmp_path / "h"), "COLUMNS": "120"})
    assert lib.returncode == 0 and "gemma3:270m" in lib.stdout, lib.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import loom_inference; print(loom_inference.__file__)"],
                           capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(venv))  # the wheel's copy, not the repository's

    # idempotent: a second run keeps the operator's config and rewrites nothing else
    config.write_text(config.read_text() + "\n# edited by the operator\n")
    second = _install("--root", str(root), "--wheelhouse", str(house), "--python", sys.executable, env=pip)
    assert second.returncode == 0, second.stderr
    assert "kept" in second.stdout and "# edited by the operator" in config.read_text()
    assert unit.read_text() == text

    _verify_unit(root, tmp_path)

    gone = _install("--root", str(root), "--uninstall")
    assert gone.returncode == 0 and not unit.exists() and not venv.exists() and config.exists()
    purged = _install("--root", str(root), "--uninstall", "--purge")
    assert purged.returncode == 0 and not config.parent.exists()


def _verify_unit(root: Path, tmp_path: Path) -> None:
    """`systemd-analyze verify` in the fake root: it checks the unit's syntax, its options and that
    ExecStart exists there. It needs no running systemd (systemd need not be PID 1)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here (Debian: apt-get install systemd)")
    # the system's own units (sysinit.target, ...) that the unit's dependencies name
    shutil.copytree("/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True,
                    dirs_exist_ok=True)
    out = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "llm-engine.service"],
                         capture_output=True, text=True, timeout=120)
    ours = [line for line in (out.stdout + out.stderr).splitlines() if "llm-engine" in line]
    assert out.returncode == 0 and not ours, out.stdout + out.stderr
