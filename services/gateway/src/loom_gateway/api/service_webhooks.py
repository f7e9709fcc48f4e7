"""A workflow app's webhook: `POST /v1/webhooks/{webhook_id}`, signed with the app's webhook
secret (store/webhooks.py), no API key. The JSON body's top-level fields are the run's inputs
(those the start node declares; others are ignored); the answer is the run id (202), or with
`?response_mode=blocking` the run's result as /v1/workflows/run answers it."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loom_gateway.api.context import Gateway
from loom_gateway.api.deps import gw
from loom_gateway.api.service_runs import _blocking as blocking  # the one blocking answer of a run
from loom_gateway.domain.errors import BadRequest, PayloadTooLarge
from loom_gateway.domain.execution import StartedRun
from loom_gateway.store import webhooks

router = APIRouter(prefix="/v1", tags=["service api: triggers"])


async def follow_in_background(g: Gateway, run: StartedRun) -> None:
    """A trigger's run that no client reads: its feed is closed, and its end recorded from
    runs.finished (bus/outcomes.py) like any run's."""
    if run.feed is not None:
        feed, run.feed = run.feed, None
        await feed.aclose()


async def _bounded_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"A webhook body is at most {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"A webhook body is at most {limit} bytes.")
    return bytes(body)


# Public to the key check: the request's HMAC signature is its credential (webhooks.verify).
@router.post("/webhooks/{webhook_id}", status_code=202, name="service.webhook", openapi_extra={"x-loom-perm": "public"},
             responses={202: {"description": "The run started: `{workflow_run_id, task_id}`"}})
async def webhook(webhook_id: str, request: Request,
                  response_mode: Literal["async", "blocking"] = Query("async")):
    g = gw(request)
    if len(webhook_id) > 64:
        raise BadRequest("webhook_id is too long", field="webhook_id")
    body = await _bounded_body(request, g.settings.webhook_max_body_bytes)
    tenant_id, app_id = await g.webhooks.verify(webhook_id, request.headers.get(webhooks.TIMESTAMP_HEADER),
                                                request.headers.get(webhooks.SIGNATURE_HEADER), body)
    try:
        inputs = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body must be a JSON object (its fields are the workflow's inputs).",
                         field="body") from None
    if not isinstance(inputs, dict):
        raise BadRequest("The body must be a JSON object (its fields are the workflow's inputs).", field="body")
    run = await g.triggers.start(tenant_id, app_id, inputs, source="webhook",
                                 response_mode="blocking" if response_mode == "blocking" else "streaming")
    if response_mode == "blocking":
        return JSONResponse(await blocking(g, run), status_code=200)
    await follow_in_background(g, run)
    return JSONResponse({"workflow_run_id": run.run_id, "task_id": run.run_id}, status_code=202)
