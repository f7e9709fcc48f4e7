"""Settings of the rag service (env prefix `LOOM_RAG_`; shared ones keep `LOOM_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from loom_common.settings import ServiceSettings


class RagSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_RAG_", extra="ignore",
                                      populate_by_name=True)

    http_port: int = 8082
    grpc_port: int = 50052
