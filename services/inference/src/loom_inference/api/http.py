"""Mounts the HTTP faces of the service on the runtime's FastAPI app: CORS, the error
handlers (typed JSON 4xx bodies naming the field), the Ollama and the OpenAI routers."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware

from loom_inference.api.common import on_inference_error, on_validation_error
from loom_inference.api.ollama.router import ollama_router, root
from loom_inference.api.openai.router import openai_router
from loom_inference.engine.client import EngineClient
from loom_inference.engine.types import InferenceError
from loom_inference.models import ModelManager
from loom_inference.settings import InferenceSettings


def mount(app: FastAPI, client: EngineClient, manager: ModelManager, settings: InferenceSettings) -> None:
    if settings.network.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.network.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])
    app.add_exception_handler(InferenceError, on_inference_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.include_router(ollama_router(client, manager))
    app.include_router(openai_router(client))
    app.add_api_route("/", root, methods=["GET"], include_in_schema=False)
