"""Settings of the tools service (env prefix `LOOM_TOOLS_`; shared ones keep `LOOM_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from loom_common.settings import ServiceSettings


class ToolsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_TOOLS_", extra="ignore",
                                      populate_by_name=True)

    http_port: int = 8083
    grpc_port: int = 50053
