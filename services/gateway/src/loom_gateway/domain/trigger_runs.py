"""A trigger's run (a schedule's tick, a webhook call): a normal run of the app's published
version, recorded with its source (`invoke_from`: schedule | webhook), under the workspace's
limits (no key makes it: `Limits.admit_workspace`) and the orchestrator's run limits."""

from __future__ import annotations

from typing import Any, Literal

from loom_gateway.domain.errors import wrong_app_mode
from loom_gateway.domain.execution import Execution, StartedRun
from loom_gateway.store.apps import Apps
from loom_gateway.store.limits import Limits

Source = Literal["schedule", "webhook"]
# The runs' end user, per source: triggers have no caller of their own.
USERS: dict[str, str] = {"schedule": "trigger:schedule", "webhook": "trigger:webhook"}


class TriggerRuns:
    def __init__(self, apps: Apps, execution: Execution, limits: Limits) -> None:
        self.apps = apps
        self.execution = execution
        self.limits = limits

    async def form_of(self, tenant_id: str, app_id: str):
        """The published workflow app a trigger runs (400 when it is not one)."""
        app = await self.apps.published(tenant_id, app_id)
        if app.mode != "workflow":
            raise wrong_app_mode("not_workflow_app")
        return app

    async def start(self, tenant_id: str, app_id: str, inputs: Any, *, source: Source,
                    response_mode: str = "streaming") -> StartedRun:
        """Start the run (inputs checked against the start node: a 400 naming the field); the
        run's event feed is open on return, for the caller to read or close."""
        app = await self.form_of(tenant_id, app_id)
        if isinstance(inputs, dict):  # a webhook's payload may carry more than the start node asks for
            inputs = {v.variable: inputs[v.variable] for v in app.form if v.variable in inputs}
        await self.limits.admit_workspace(tenant_id)
        return await self.execution.start(app, kind="workflow", user=USERS[source], inputs=inputs,
                                          response_mode=response_mode, invoke_from=source)
