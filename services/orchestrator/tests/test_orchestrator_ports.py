"""The orchestrator service's default ports are the ones `make up` and the README announce."""

from loom_common.devstack import ports
from loom_orchestrator.settings import OrchestratorSettings


def test_default_ports_match_the_stack_table() -> None:
    expected = {p.name: p for p in ports.SERVICES}["orchestrator"]
    settings = OrchestratorSettings()
    assert settings.http_port == expected.http - ports.OFFSET
    assert getattr(settings, "grpc_port", None) == (expected.grpc - ports.OFFSET if expected.grpc else None)
