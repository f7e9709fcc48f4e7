"""Settings of the gateway service (env prefix `LOOM_GATEWAY_`; shared ones keep `LOOM_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from loom_common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_GATEWAY_", extra="ignore",
                                      populate_by_name=True)

    http_port: int = 8080
