"""agent: a tool-using loop of at most `max_iterations` model calls.

function_calling: tool schemas go to inference as `tools` (arguments decoded under their
JSON schema); each round's calls run through the tools service and come back as `tool`
messages. react: for models or backends without tool calling, every step is decoded under
a JSON schema {thought, action, action_input} with action one of the tools or
"final_answer", so each step parses. A function-calling agent whose backend refuses tools
falls back to react. Each round emits an `agent_thought` event.

A call cut short by `max_tokens` comes back from inference as no call, no text and finish
reason `length` (its arguments would not parse); a react step cut short does not parse. That
round is asked again once with twice the budget; cut again, the node fails naming max_tokens,
rather than answering nothing or half-written JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from loom_common.dsl.ai_nodes import AgentData
from loom_common.errors import PermanentError
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node, Traits
from loom_orchestrator.engine.ports import ChatMessage, ToolSchema
from loom_orchestrator.nodes import modeling


class AgentNode(Node[AgentData]):
    type, version = "agent", "1"
    traits = Traits(calls_model=True, streams=True)

    async def run(self, data: AgentData, ctx: NodeContext) -> NodeResult:
        tools = await self._tools(data, ctx)
        query = ctx.pool.render(data.query)
        messages = [ChatMessage("system", ctx.pool.render(data.instruction))] if data.instruction else []
        messages += [*modeling.history(data.memory, ctx.services.history), ChatMessage("user", query)]
        state = _Run(ctx, data, tools, messages)
        if data.strategy == "react" or not tools:
            await state.react()
        else:
            try:
                await state.function_calling()
            except CallCut:
                raise
            except PermanentError as exc:
                if "tool" not in str(exc).lower():
                    raise
                state.fallback = str(exc)
                await state.react()
        ctx.stream(state.answer)
        return NodeResult(
            inputs={"query": query},
            outputs={
                "text": state.answer,
                "iterations": state.rounds,
                "tool_calls": state.calls,
                "usage": {
                    "prompt_tokens": state.prompt_tokens,
                    "completion_tokens": state.completion_tokens,
                    "total_tokens": state.prompt_tokens + state.completion_tokens,
                },
            },
            process_data={
                "strategy": "react" if state.react_used else "function_calling",
                "fallback": state.fallback,
                "prompts": modeling.prompts(state.messages),
            },
            prompt_tokens=state.prompt_tokens,
            completion_tokens=state.completion_tokens,
        )

    async def _tools(self, data: AgentData, ctx: NodeContext) -> list[ToolSchema]:
        if not data.tools:
            return []
        if ctx.services.tools is None:
            raise RuntimeError("no tools service configured for the agent's tools")
        available = {t.name: t for t in await ctx.services.tools.list_tools(ctx.run.tenant_id, 10.0)}
        missing = [t.tool_name for t in data.tools if t.tool_name not in available]
        if missing:
            raise ValueError(f"tools: not available to this tenant: {', '.join(missing)}")
        return [
            ToolSchema(
                t.tool_name, t.description or available[t.tool_name].description, available[t.tool_name].parameters
            )
            for t in data.tools
        ]


class CallCut(PermanentError):
    """The model's tool call did not fit in its token budget, even when asked again with twice it."""


class _Run:
    def __init__(self, ctx: NodeContext, data: AgentData, tools: list[ToolSchema], messages: list[ChatMessage]):
        self.ctx, self.data, self.tools, self.messages = ctx, data, tools, messages
        self.answer, self.rounds, self.calls = "", 0, []
        self.prompt_tokens = self.completion_tokens = 0
        self.react_used, self.fallback = False, None

    async def _call(self, max_tokens: int | None = None, **kw: Any) -> modeling.Completion:
        req = modeling.request(self.ctx, self.data.model, self.messages, **kw)
        if max_tokens is not None:
            req.params["max_tokens"] = max_tokens
        done = await modeling.complete(self.ctx, req)
        self.prompt_tokens += done.prompt_tokens
        self.completion_tokens += done.completion_tokens
        return done

    async def _round(self, cut: Callable[[modeling.Completion], bool], **kw: Any) -> modeling.Completion:
        """One round; a step cut by max_tokens (`cut`) is asked again with twice the budget."""
        self.rounds += 1
        done = await self._call(**kw)
        if not cut(done):
            return done
        budget = 2 * (done.completion_tokens or 256)
        done = await self._call(max_tokens=budget, **kw)
        if cut(done):
            raise CallCut(f"model: its call did not fit in max_tokens={budget} (asked twice); raise the agent "
                          "model's max_tokens")
        return done

    async def _invoke(self, name: str, args: Any) -> str:
        try:
            if not isinstance(args, dict):
                raise ValueError("tool arguments must be a JSON object")
            result = await self.ctx.services.tools.invoke(
                name,
                args,
                tenant_id=self.ctx.run.tenant_id,
                run_id=self.ctx.run.run_id,
                node_id=self.ctx.node_id,
                timeout_s=min(self.ctx.timeout_s or 60.0, 60.0),
            )
            observation = json.dumps(result, ensure_ascii=False)
        except Exception as exc:  # the model sees the failure and may try something else
            observation = f"error: {exc}"
        self.calls.append({"tool": name, "input": args, "observation": observation})
        return observation

    def _thought(self, thought: str, tool: str, tool_input: Any, observation: str) -> None:
        self.ctx.emit(
            "agent_thought",
            {
                "id": self.ctx.run.execution_id(f"{self.ctx.key}#{self.rounds}"),
                "message_id": self.ctx.run.message_id,
                "conversation_id": self.ctx.run.conversation_id,
                "position": self.rounds,
                "thought": thought,
                "tool": tool,
                "tool_input": json.dumps(tool_input, ensure_ascii=False) if tool else "",
                "observation": observation,
                "created_at": int(self.ctx.run.clock()),
            },
        )

    async def function_calling(self) -> None:
        choice = self.data.tool_choice
        while self.rounds < self.data.max_iterations:
            done = await self._round(_cut_call, tools=self.tools, tool_choice=choice)
            choice = "auto"
            if not done.tool_calls:
                self.answer = done.text
                self._thought(done.text, "", None, "")
                return
            self.messages.append(ChatMessage("assistant", done.text, tool_calls=done.tool_calls))
            observations = {}
            for call in done.tool_calls:
                try:
                    args = json.loads(call.arguments or "{}")
                except json.JSONDecodeError:
                    args = call.arguments
                observations[call.name] = await self._invoke(call.name, args)
                self.messages.append(ChatMessage("tool", observations[call.name], name=call.name, tool_call_id=call.id))
            self._thought(
                done.text,
                ";".join(observations),
                {c.name: c.arguments for c in done.tool_calls},
                json.dumps(observations, ensure_ascii=False),
            )
            self.answer = done.text
        # Out of iterations: the last round's text stands as the answer (Dify does the same).

    async def react(self) -> None:
        self.react_used = True
        names = [t.name for t in self.tools]
        listing = "\n".join(f"- {t.name}: {t.description} args schema {json.dumps(t.parameters)}" for t in self.tools)
        self.messages.insert(
            0,
            ChatMessage(
                "system",
                "Answer the question. You may use these tools:\n"
                + listing
                + '\nReply with JSON {"thought", "action", "action_input"}; action is a '
                'tool name or "final_answer" with action_input {"answer": ...}.',
            ),
        )
        schema = {
            "type": "object",
            "properties": {
                "thought": {"type": "string", "maxLength": 400},
                "action": {"enum": [*names, "final_answer"]},
                "action_input": {"type": "object"},
            },
            "required": ["thought", "action", "action_input"],
        }
        while self.rounds < self.data.max_iterations:
            done = await self._round(_cut_step, json_schema=schema, defaults={"max_tokens": 256})
            try:
                step = modeling.parse_json(done.text)
                action, thought, tool_input = step["action"], str(step.get("thought", "")), step.get("action_input")
            except (ValueError, KeyError, TypeError):
                self.answer = done.text
                self._thought(done.text, "", None, "")
                return
            if action == "final_answer":
                self.answer = (
                    str((tool_input or {}).get("answer", thought)) if isinstance(tool_input, dict) else thought
                )
                self._thought(thought, "", None, "")
                return
            observation = await self._invoke(action, tool_input)
            self._thought(thought, action, tool_input, observation)
            self.messages += [ChatMessage("assistant", done.text), ChatMessage("user", "Observation: " + observation)]
            self.answer = thought


def _cut_call(done: modeling.Completion) -> bool:
    """Inference hands back a call cut by max_tokens as no call and no text (see the module doc)."""
    return done.finish_reason == "length" and not done.tool_calls and not done.text.strip()


def _cut_step(done: modeling.Completion) -> bool:
    """A react step (JSON under a schema) cut by max_tokens: it does not parse."""
    if done.finish_reason != "length":
        return False
    try:
        modeling.parse_json(done.text)
    except ValueError:
        return True
    return False
