"""Settings every service shares (loom_common.settings): one home, one JetStream replica count,
one inference address, read by all five services (and the standalone engine) from the same
`LOOM_` variables whatever each service's own prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from loom_common import blobs, service_auth
from loom_common.settings import LoomSettings, loom_home
from loom_gateway.settings import GatewaySettings
from loom_inference.settings import InferenceSettings
from loom_orchestrator.settings import OrchestratorSettings
from loom_rag.settings import RagSettings
from loom_tools.settings import ToolsSettings

SERVICES = (GatewaySettings, OrchestratorSettings, RagSettings, ToolsSettings, InferenceSettings)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ("LOOM_HOME", "LOOM_JETSTREAM_REPLICAS", "LOOM_INFERENCE_ADDR", "LOOM_INFERENCE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))


@pytest.mark.parametrize("settings", SERVICES, ids=lambda s: s.__name__)
def test_every_service_defaults_to_the_same_home(settings, tmp_path) -> None:
    """`~/.loom`, the engine's default: no longer `./.loom` of whatever folder a service started
    in (two processes started from two folders generated two service-token secrets)."""
    assert loom_home() == tmp_path / "user" / ".loom"
    assert settings().home == tmp_path / "user" / ".loom"


@pytest.mark.parametrize("settings", SERVICES, ids=lambda s: s.__name__)
def test_loom_home_and_the_shared_addresses_reach_every_service(settings, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LOOM_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("LOOM_JETSTREAM_REPLICAS", "3")
    monkeypatch.setenv("LOOM_INFERENCE_ADDR", "inference.internal:50051")
    s = settings()
    assert s.home == tmp_path / "state"
    assert s.jetstream_replicas == 3
    assert s.inference_addr == "inference.internal:50051"


def test_the_home_places_each_services_files(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LOOM_HOME", str(tmp_path / "state"))
    home = tmp_path / "state"
    assert GatewaySettings().gateway_home() == home / "gateway"
    assert GatewaySettings().storage_root() == home / "gateway" / "files"
    assert OrchestratorSettings().storage_root() == home / "gateway" / "files"  # reads the gateway's uploads
    assert RagSettings().storage_root() == home / "rag" / "files"
    assert ToolsSettings().sqlite_dirs()[0] == home / "tools" / "sqlite"
    assert InferenceSettings().model_store == home / "models"
    assert service_auth.secret_path() == home / "secrets" / "service-token"


def test_a_home_given_in_code_wins_over_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LOOM_HOME", str(tmp_path / "env"))
    s = RagSettings(home=tmp_path / "code")
    assert s.storage_root() == tmp_path / "code" / "rag" / "files"
    assert blobs.StorageSettings().storage_root() == tmp_path / "env" / "gateway" / "files"


def test_the_shells_home_is_not_mistaken_for_loom_home(monkeypatch, tmp_path) -> None:
    """Environment names match case-blind: a `home` alias would have read $HOME itself."""
    monkeypatch.setenv("HOME", str(tmp_path / "shell"))
    assert LoomSettings().home == Path(tmp_path / "shell" / ".loom")
