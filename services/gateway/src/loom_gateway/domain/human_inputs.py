"""Human-input forms of paused runs, as the gateway sees them: which forms a run waits for, and
an answer submitted through the service API or the console.

The gateway reads no orchestrator table: a run's open forms are read back from its event
stream (each `human_input_required` carries the whole form; the node's `node_finished` closes
it), so they survive restarts of both services. An answer is checked against its form
(`loom_common.dsl.human_input.check_answer`: a 400 names the field), written once to
`human_input_answers` (a second answer of the same form is a 409), and sent to the orchestrator
as a run request carrying `resume` (id `answer-<form id>`, so a retried publish is stored once):
the run is taken up by a worker like any request. Errors:

    404 not_found          no such run of this app
    409 form_not_pending   the run does not wait for this form (never did, or it was closed)
    409 form_expired       the form's deadline passed (its timeout branch is taken instead)
    409 already_answered   the form has an answer already
    403 forbidden          the form is not answerable from here (`answerable_by`)
    400 invalid_param      a value does not fit the form; `field` names it (`inputs.reply`)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from loom_common.dsl.human_input import FormError, FormField, UserAction, check_answer
from loom_common.events import HumanInputAnswer, RunRequested
from loom_common.events.runs import HumanInputRequired, MessageEnd, NodeFinished, WorkflowFinished
from loom_gateway.domain.errors import BadRequest, Conflict, Forbidden
from loom_gateway.domain.execution import Execution


@dataclass
class OpenForms:
    """What a run's stored events say about its forms."""

    forms: dict[str, dict[str, Any]] = field(default_factory=dict)  # form_id -> human_input_required data
    finished: bool = False


async def open_forms(execution: Execution, run_id: str) -> OpenForms:
    out = OpenForms()
    async for ev in execution.bus.events(run_id, 0, follow=False):
        d = ev.data
        if isinstance(d, HumanInputRequired):
            out.forms[d.form_id] = d.model_dump(exclude={"type"})
        elif isinstance(d, NodeFinished):
            out.forms.pop(d.id, None)
        elif isinstance(d, WorkflowFinished | MessageEnd):
            out.finished = True
    if out.finished:
        out.forms.clear()
    return out


async def pending(execution: Execution, tenant_id: str, app_id: str, run_id: str) -> list[dict[str, Any]]:
    """The forms the run waits for that have no answer yet, oldest first."""
    await execution.owned_run(tenant_id, app_id, run_id)
    forms = (await open_forms(execution, run_id)).forms
    if not forms:
        return []
    answered = {r["form_id"] for r in await execution.pool.fetch(
        "SELECT form_id FROM human_input_answers WHERE tenant_id = $1 AND form_id = ANY($2::text[])",
        tenant_id, list(forms))}
    return [f for fid, f in forms.items() if fid not in answered]


async def submit(execution: Execution, *, tenant_id: str, app_id: str, run_id: str, form_id: str, inputs: Any,
                 action: str | None, answered_by: str, channel: str) -> dict[str, Any]:
    """Check and record the answer, and ask for the run to be resumed with it."""
    await execution.owned_run(tenant_id, app_id, run_id)
    form = (await open_forms(execution, run_id)).forms.get(form_id)
    if form is None:
        if await execution.pool.fetchval("SELECT 1 FROM human_input_answers WHERE form_id = $1 AND tenant_id = $2",
                                         form_id, tenant_id):  # answered here, and the run went on already
            raise Conflict("This form was answered already.", code="already_answered")
        raise Conflict("The run is not waiting for this form.", code="form_not_pending")
    if channel not in (form.get("answerable_by") or []):
        raise Forbidden(f"This form cannot be answered through the {channel}.")
    expires = form.get("expiration_time")
    if isinstance(expires, int | float) and time.time() >= expires:
        raise Conflict("The form timed out; the run takes its timeout branch.", code="form_expired")
    fields = [FormField.model_validate(f) for f in form.get("fields") or []]
    actions = [UserAction.model_validate(a) for a in form.get("user_actions") or []]
    try:
        values, branch = check_answer(fields, actions, inputs, action)
    except FormError as exc:
        raise BadRequest(str(exc), field=exc.field) from None
    inserted = await execution.pool.fetchval(
        "INSERT INTO human_input_answers (form_id, tenant_id, app_id, run_id, node_id, action, inputs, answered_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8) ON CONFLICT (form_id) DO NOTHING RETURNING 1",
        form_id, tenant_id, app_id, run_id, str(form.get("node_id") or ""), branch,
        json.dumps(values, ensure_ascii=False), answered_by)
    if not inserted:
        raise Conflict("This form was answered already.", code="already_answered")
    answer = HumanInputAnswer(form_id=form_id, node_key=str(form.get("node_key") or form.get("node_id") or ""),
                              values=values, action=branch, answered_by=answered_by)
    try:
        await execution.bus.request(RunRequested(tenant_id=tenant_id, run_id=run_id, app_id=app_id, resume=answer,
                                                 event_id=f"answer-{form_id}"))
    except BaseException:  # not sent: the answer is not taken, the caller may submit it again
        await execution.pool.execute("DELETE FROM human_input_answers WHERE form_id = $1", form_id)
        raise
    await execution.pool.execute("UPDATE runs SET status = 'running' WHERE id = $1 AND status = 'paused'", run_id)
    execution.reads.wrote(tenant_id)
    execution.reads.wrote(app_id)
    return {"result": "success", "workflow_run_id": run_id, "form_id": form_id, "action": branch,
            "inputs": values}
