"""Settings of the inference service (env prefix `LOOM_INFERENCE_`; shared ones keep `LOOM_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from loom_common.settings import ServiceSettings


class InferenceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_INFERENCE_", extra="ignore",
                                      populate_by_name=True)

    http_port: int = 11434
    grpc_port: int = 50051
