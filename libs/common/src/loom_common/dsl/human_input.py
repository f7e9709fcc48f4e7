"""The human-input node: the run pauses on a form until a person answers it (or its time runs out).

Shape (Dify's names where Dify has them: `form_content`, `user_actions`, `timeout`,
`timeout_unit`; Loom's own `fields` and `answerable_by`):

    type: human-input
    form_content: "Customer {{#sys.user_id#}} asks: {{#sys.query#}}"   # shown above the form
    fields:                                                          # the form
      - {name: reply, type: paragraph, label: Your reply, required: true}
      - {name: priority, type: select, options: [low, high]}
    user_actions: [{id: approve, title: Approve}, {id: reject, title: Reject}]  # one branch each
    timeout: 36                 # 0: no timeout
    timeout_unit: hour          # second | minute | hour | day
    answerable_by: [service-api, console]

Edge handles: each user action's id (or `source` when there are none), plus `timeout` when a
timeout is set. Outputs: every field by name, `action_id` and `timed_out`.

`check_answer(fields, actions, values, action)` is the one validation of a submitted answer
(the gateway runs it before it accepts one): it raises `FormError` naming the field.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, JsonValue, model_validator

from loom_common.dsl.base import Model, NodeData

TIMEOUT_HANDLE = "timeout"
RESERVED_OUTPUTS = ("action_id", "timed_out")
# The run's events (which carry the form to whoever answers) are kept 7 days: a form must be
# answerable, or time out, well within that.
MAX_TIMEOUT_S = 6 * 24 * 3600
_UNIT_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
MAX_TEXT = 100_000
Channel = Literal["service-api", "console"]


class FormField(Model):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    type: Literal["text", "paragraph", "number", "select", "boolean"] = "text"
    label: str = Field("", max_length=200)
    required: bool = True
    options: list[str] = Field(default_factory=list, max_length=100)  # select only
    max_length: int = Field(10_000, ge=1, le=MAX_TEXT)  # text and paragraph
    default: JsonValue = None  # the value a timed-out form leaves (None when unset)


class UserAction(Model):
    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,19}$")
    title: str = Field("", max_length=100)


class HumanInputData(NodeData):
    type: Literal["human-input"] = "human-input"
    form_content: str = Field("", max_length=20_000)
    fields: list[FormField] = Field(default_factory=list, max_length=50)
    user_actions: list[UserAction] = Field(default_factory=list, max_length=10)
    timeout: int = Field(0, ge=0)
    timeout_unit: Literal["second", "minute", "hour", "day"] = "hour"
    answerable_by: list[Channel] = Field(default_factory=lambda: ["service-api", "console"], min_length=1)

    @model_validator(mode="after")
    def _check(self) -> HumanInputData:
        names = [f.name for f in self.fields]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"fields: duplicated name '{name}'")
            if name in RESERVED_OUTPUTS:
                raise ValueError(f"fields: '{name}' is reserved (an output of every human-input node)")
        ids = [a.id for a in self.user_actions]
        if len(set(ids)) != len(ids):
            raise ValueError("user_actions: duplicated id")
        if TIMEOUT_HANDLE in ids or "fail-branch" in ids:
            raise ValueError(f"user_actions: '{TIMEOUT_HANDLE}' and 'fail-branch' are reserved handles")
        for f in self.fields:
            if f.type == "select" and not f.options:
                raise ValueError(f"fields: select field '{f.name}' needs options")
        if self.wait_s > MAX_TIMEOUT_S:
            raise ValueError(f"timeout: at most {MAX_TIMEOUT_S // 86400} days (a run's events are kept 7 days)")
        return self

    @property
    def wait_s(self) -> int:
        """How long the form waits for an answer (0: for ever); not `timeout_s`, the per-attempt limit."""
        return self.timeout * _UNIT_S[self.timeout_unit]

    def templates(self):
        return [("form_content", self.form_content)]

    def handles(self) -> set[str]:
        out = {a.id for a in self.user_actions} or {"source"}
        return out | ({TIMEOUT_HANDLE} if self.timeout else set())

    def form(self) -> dict[str, Any]:
        """The form as events carry it (fields and actions; the content is rendered apart)."""
        return {"fields": [f.model_dump() for f in self.fields],
                "user_actions": [a.model_dump() for a in self.user_actions],
                "answerable_by": list(self.answerable_by)}


class FormError(ValueError):
    """An answer that does not fit the form; `field` names the offending part (`inputs.reply`)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_answer(fields: list[FormField], actions: list[UserAction], values: Any,
                 action: str | None) -> tuple[dict[str, Any], str]:
    """The answer's values (only the form's fields, defaults for optional ones left out) and the
    branch it takes; raises FormError."""
    if not isinstance(values, dict):
        raise FormError("inputs", "inputs must be an object of the form's fields")
    known = {f.name for f in fields}
    for key in values:
        if key not in known:
            raise FormError(f"inputs.{key}", f"'{key}' is not a field of this form")
    out: dict[str, Any] = {}
    for f in fields:
        value = values.get(f.name)
        if value is None or value == "":
            if f.required:
                raise FormError(f"inputs.{f.name}", f"'{f.name}' is required")
            out[f.name] = f.default
            continue
        out[f.name] = _typed(f, value)
    ids = [a.id for a in actions]
    if not ids:
        if action not in (None, "", "source"):
            raise FormError("action", "this form has no actions")
        return out, "source"
    if action is None and len(ids) == 1:
        return out, ids[0]
    if action not in ids:
        raise FormError("action", f"action must be one of {ids}")
    return out, action


def _typed(f: FormField, value: Any) -> Any:
    where = f"inputs.{f.name}"
    if f.type in ("text", "paragraph"):
        if not isinstance(value, str):
            raise FormError(where, f"'{f.name}' must be a string")
        if len(value) > f.max_length:
            raise FormError(where, f"'{f.name}' is longer than {f.max_length} characters")
        return value
    if f.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise FormError(where, f"'{f.name}' must be a number")
        return value
    if f.type == "boolean":
        if not isinstance(value, bool):
            raise FormError(where, f"'{f.name}' must be true or false")
        return value
    if value not in f.options:  # select
        raise FormError(where, f"'{f.name}' must be one of {f.options}")
    return value
