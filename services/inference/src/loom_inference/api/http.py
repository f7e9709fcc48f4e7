"""Mounts the HTTP faces of the service on the runtime's FastAPI app: CORS, the access checks
(api/access.py: Host/Origin allow-lists, tokens), the error handlers (typed JSON 4xx bodies
naming the field), the Ollama and the OpenAI routers."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware

from loom_inference.api.access import AccessMiddleware, AccessPolicy
from loom_inference.api.common import on_inference_error, on_validation_error
from loom_inference.api.ollama.any_content_type import AnyContentTypeIsJson
from loom_inference.api.ollama.router import ollama_router, root
from loom_inference.api.openai.router import openai_router
from loom_inference.engine.client import EngineClient
from loom_inference.engine.types import InferenceError
from loom_inference.models import ModelManager
from loom_inference.settings import InferenceSettings


def access_policy(settings: InferenceSettings) -> AccessPolicy:
    return AccessPolicy.build(
        bind_host=settings.http_host, allowed_hosts=settings.allowed_hosts,
        api_token=settings.api_token.get_secret_value() if settings.api_token else None,
        admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
        cors_origins=settings.network.cors_origins)


def mount(app: FastAPI, client: EngineClient, manager: ModelManager, settings: InferenceSettings) -> None:
    if settings.network.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.network.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])
    app.add_middleware(AnyContentTypeIsJson)  # `curl -d` bodies, as Ollama takes them
    # Added last, so it runs first: a refused Host or token never reaches CORS or a route.
    app.add_middleware(AccessMiddleware, policy=access_policy(settings))
    app.add_exception_handler(InferenceError, on_inference_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.include_router(ollama_router(client, manager))
    app.include_router(openai_router(client))
    app.add_api_route("/", root, methods=["GET"], include_in_schema=False)
