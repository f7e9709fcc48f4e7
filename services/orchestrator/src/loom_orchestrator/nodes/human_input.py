"""human-input: the run waits for a person to answer a form (or for the form's timeout).

First time through, the form is recorded as pending (`HumanInputs.ask`), announced with
`human_input_required` (the rendered content, the fields and actions, the deadline, who may
answer) and the node raises `RunPaused`. When the run is taken up again the form is answered
(outputs: the submitted values, `action_id`, `timed_out` false; the branch: the action) or
timed out (the fields' defaults, `timed_out` true; the branch: `timeout`).

Pure in the engine's sense: asking again is harmless (the form row is written once), so the
node's start is not journaled and a paused run's resumptions never count as restarts.
"""

from __future__ import annotations

from loom_common.dsl.human_input import TIMEOUT_HANDLE, HumanInputData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits
from loom_orchestrator.engine.pause import PendingForm, RunPaused

# The rendered content travels in run events (NATS messages of at most 1 MB) and the form's row:
# a template that pulls in a whole document is cut here, with a mark.
MAX_CONTENT = 20_000


class HumanInputNode(Node[HumanInputData]):
    type, version = "human-input", "1"
    traits = Traits(pure=True)

    async def run(self, data: HumanInputData, ctx: NodeContext) -> NodeResult:
        forms = ctx.services.human_inputs
        if forms is None:
            raise RuntimeError("human-input needs the run's form store (not configured here)")
        form_id = ctx.run.execution_id(ctx.key)
        content = ctx.pool.render(data.form_content)
        if len(content) > MAX_CONTENT:
            content = content[:MAX_CONTENT] + " [...]"
        state = await forms.ask(ctx.run.run_id, ctx.run.tenant_id, form_id, ctx.key, ctx.node_id,
                                {**data.form(), "form_content": content, "title": data.title or ctx.node_id},
                                data.wait_s)
        if state.status == "pending":
            ctx.emit("human_input_required", {
                "form_id": form_id, "node_id": ctx.node_id, "node_key": ctx.key,
                "node_title": data.title or ctx.node_id, "form_content": content, **data.form(),
                "expiration_time": int(state.deadline) if state.deadline else None})
            raise RunPaused([PendingForm(form_id, ctx.key)])
        if state.status == "timed_out":
            outputs = {f.name: f.default for f in data.fields}
            return NodeResult(outputs={**outputs, "action_id": TIMEOUT_HANDLE, "timed_out": True},
                              process_data={"form_id": form_id}, edge_handle=TIMEOUT_HANDLE)
        handle = state.action if state.action in data.handles() else "source"
        return NodeResult(outputs={**state.values, "action_id": state.action, "timed_out": False},
                          inputs={"form_content": content},
                          process_data={"form_id": form_id, "answered_by": state.answered_by}, edge_handle=handle)
