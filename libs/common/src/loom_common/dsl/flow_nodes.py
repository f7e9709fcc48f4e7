"""Node data of the control-flow and data node types: start, end, answer, if-else,
template-transform, code, http-request, tool, variable-aggregator, variable-assigner,
iteration (+ iteration-start) and loop (+ loop-start, loop-end).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue, model_validator

from loom_common.dsl.base import Condition, Model, NodeData, ValueSelector, VariableSelector

InputType = Literal["text-input", "paragraph", "select", "number", "checkbox", "json_object", "file", "file-list"]


class InputVariable(Model):
    """A typed input of the start node (a form field of the app)."""

    variable: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    label: str = ""
    type: InputType = "text-input"
    required: bool = True
    max_length: int | None = Field(default=None, ge=1)
    options: list[str] = Field(default_factory=list)
    default: JsonValue = None


class StartData(NodeData):
    type: Literal["start"] = "start"
    variables: list[InputVariable] = Field(default_factory=list)


class EndData(NodeData):
    type: Literal["end"] = "end"
    outputs: list[VariableSelector] = Field(default_factory=list)

    def selectors(self):
        return [(f"outputs.{o.variable}", o.value_selector) for o in self.outputs]


class AnswerData(NodeData):
    type: Literal["answer"] = "answer"
    answer: str = ""

    def templates(self):
        return [("answer", self.answer)]


class Case(Model):
    case_id: str
    logical_operator: Literal["and", "or"] = "and"
    conditions: list[Condition] = Field(default_factory=list)


class IfElseData(NodeData):
    """Branches on the first case whose conditions hold (edge handle = case_id), else `false`."""

    type: Literal["if-else"] = "if-else"
    cases: list[Case] = Field(min_length=1)

    def selectors(self):
        return [(f"cases.{c.case_id}.conditions.{i}", cond.variable_selector)
                for c in self.cases for i, cond in enumerate(c.conditions)]

    def handles(self) -> set[str]:
        return {c.case_id for c in self.cases} | {"false"}


class TemplateTransformData(NodeData):
    type: Literal["template-transform"] = "template-transform"
    template: str
    variables: list[VariableSelector] = Field(default_factory=list)

    def selectors(self):
        return [(f"variables.{v.variable}", v.value_selector) for v in self.variables]


class CodeOutput(Model):
    type: Literal["string", "number", "object", "boolean", "array[string]", "array[number]",
                  "array[object]", "array[boolean]"] = "string"


class CodeData(NodeData):
    """User code, run by the tools service's sandbox (never in the orchestrator)."""

    type: Literal["code"] = "code"
    code_language: Literal["python3", "javascript"] = "python3"
    code: str = Field(min_length=1)
    variables: list[VariableSelector] = Field(default_factory=list)
    outputs: dict[str, CodeOutput] = Field(default_factory=dict)

    def selectors(self):
        return [(f"variables.{v.variable}", v.value_selector) for v in self.variables]


class HttpBody(Model):
    type: Literal["none", "json", "raw-text", "form-data", "x-www-form-urlencoded"] = "none"
    data: str | list[dict[str, JsonValue]] = ""


class HttpRequestData(NodeData):
    """An HTTP call made by the tools service (`http.request`, behind its SSRF guard).

    `headers` and `params` use Dify's "key:value" lines; every text field may hold references.
    """

    type: Literal["http-request"] = "http-request"
    method: Literal["get", "post", "put", "patch", "delete", "head",
                    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "get"
    url: str = Field(min_length=1)
    headers: str = ""
    params: str = ""
    body: HttpBody = Field(default_factory=HttpBody)

    def templates(self):
        data = self.body.data if isinstance(self.body.data, str) else ""
        return [("url", self.url), ("headers", self.headers), ("params", self.params), ("body.data", data)]


class ToolParameter(Model):
    type: Literal["mixed", "variable", "constant"] = "constant"
    value: JsonValue = None


class ToolData(NodeData):
    """One call of a tools-service tool (`tool_name`, e.g. `time.now` or a registered tool)."""

    type: Literal["tool"] = "tool"
    provider_id: str = ""
    tool_name: str = Field(min_length=1)
    tool_parameters: dict[str, ToolParameter] = Field(default_factory=dict)

    def selectors(self):
        return [(f"tool_parameters.{k}", p.value) for k, p in self.tool_parameters.items()
                if p.type == "variable" and isinstance(p.value, list)]

    def templates(self):
        return [(f"tool_parameters.{k}", p.value) for k, p in self.tool_parameters.items()
                if p.type == "mixed" and isinstance(p.value, str)]


class VariableAggregatorData(NodeData):
    """Outputs the first of `variables` that has a value (the branch that ran)."""

    type: Literal["variable-aggregator"] = "variable-aggregator"
    output_type: str = "string"
    variables: list[ValueSelector] = Field(default_factory=list)

    def selectors(self):
        return [(f"variables.{i}", s) for i, s in enumerate(self.variables)]


class AssignItem(Model):
    variable_selector: ValueSelector
    input_type: Literal["variable", "constant"] = "constant"
    operation: Literal["over-write", "clear", "append", "extend", "set", "+=", "-=", "*=", "/=",
                       "remove-first", "remove-last"] = "over-write"
    value: JsonValue = None


class VariableAssignerData(NodeData):
    """Writes conversation variables (persisted per conversation) or loop variables."""

    type: Literal["assigner"] = "assigner"
    version: str = "2"
    items: list[AssignItem] = Field(default_factory=list)

    def selectors(self):
        out = [(f"items.{i}.variable_selector", it.variable_selector) for i, it in enumerate(self.items)]
        out += [(f"items.{i}.value", it.value) for i, it in enumerate(self.items)
                if it.input_type == "variable" and isinstance(it.value, list)]
        return out


class IterationData(NodeData):
    """Runs its child nodes (those with `parent_id` = this node) once per item of a list."""

    type: Literal["iteration"] = "iteration"
    iterator_selector: ValueSelector
    output_selector: ValueSelector
    start_node_id: str = ""
    is_parallel: bool = False
    parallel_nums: int = Field(default=10, ge=1, le=100)
    error_handle_mode: Literal["terminated", "continue-on-error", "remove-abnormal-output"] = "terminated"

    def selectors(self):
        return [("iterator_selector", self.iterator_selector)]


class IterationStartData(NodeData):
    type: Literal["iteration-start"] = "iteration-start"


class LoopVariable(Model):
    label: str
    var_type: str = "string"
    value_type: Literal["constant", "variable"] = "constant"
    value: JsonValue = None


class LoopData(NodeData):
    """Runs its child nodes until the break conditions hold or `loop_count` rounds have run."""

    type: Literal["loop"] = "loop"
    loop_count: int = Field(default=10, ge=1, le=1000)
    break_conditions: list[Condition] = Field(default_factory=list)
    logical_operator: Literal["and", "or"] = "and"
    loop_variables: list[LoopVariable] = Field(default_factory=list)
    start_node_id: str = ""

    @model_validator(mode="after")
    def _unique_vars(self):
        names = [v.label for v in self.loop_variables]
        if len(names) != len(set(names)):
            raise ValueError("loop_variables labels must be unique")
        return self


class LoopStartData(NodeData):
    type: Literal["loop-start"] = "loop-start"


class LoopEndData(NodeData):
    """Reaching it ends the enclosing loop after the current round."""

    type: Literal["loop-end"] = "loop-end"
