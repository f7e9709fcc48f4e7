"""The tools service's default ports are the ones `make up` and the README announce."""

from loom_common.devstack import ports
from loom_tools.settings import ToolsSettings


def test_default_ports_match_the_stack_table() -> None:
    expected = {p.name: p for p in ports.SERVICES}["tools"]
    settings = ToolsSettings()
    assert settings.http_port == expected.http - ports.OFFSET
    assert getattr(settings, "grpc_port", None) == (expected.grpc - ports.OFFSET if expected.grpc else None)


def test_the_tools_service_stays_on_pythons_event_loop(monkeypatch) -> None:
    """uvloop forks sandbox children with plain fork(); from this gRPC process 24 of 80 of them
    crashed with SIGSEGV (CPython's vfork path: 0 of 80). The shared switch does not move it."""
    monkeypatch.setenv("LOOM_EVENT_LOOP", "uvloop")
    assert ToolsSettings().event_loop == "asyncio"
