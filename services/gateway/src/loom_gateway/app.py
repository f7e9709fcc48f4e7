"""Composition root of the gateway."""

from __future__ import annotations

from loom_common.runtime import ServiceRuntime
from loom_gateway import __version__
from loom_gateway.settings import GatewaySettings


def build(settings: GatewaySettings | None = None) -> ServiceRuntime:
    settings = settings or GatewaySettings()
    return ServiceRuntime("gateway", settings, version=__version__, schema="gateway",
                          migrations="loom_gateway.migrations")
