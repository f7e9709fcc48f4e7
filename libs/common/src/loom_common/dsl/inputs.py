"""An app's typed inputs (its start node's variables), checked by one set of rules: the gateway
applies them when a request arrives (a 400 naming the field, as Dify answers) and the
orchestrator's start node when the run starts (the request may come from elsewhere)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loom_common.dsl.flow_nodes import InputVariable


class InputError(ValueError):
    """An input that breaks its variable's rules; `variable` names it."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


def check_inputs(variables: Sequence[InputVariable], raw: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs the variables ask for, defaults filled in and numbers made numbers."""
    out: dict[str, Any] = {}
    for var in variables:
        value = raw.get(var.variable, var.default)
        if value in (None, ""):
            if var.required:
                raise InputError(var.variable, f"input '{var.variable}' is required")
            out[var.variable] = value
            continue
        out[var.variable] = _coerce(var, value)
    return out


def _coerce(var: InputVariable, value: Any) -> Any:
    name = var.variable

    def bad(message: str) -> InputError:
        return InputError(name, f"input '{name}' {message}")

    if var.type == "number":
        if isinstance(value, bool):
            raise bad("must be a number")
        try:
            num = float(value)
        except (TypeError, ValueError):
            raise bad("must be a number") from None
        return int(num) if num.is_integer() else num
    if var.type in ("text-input", "paragraph", "select"):
        if not isinstance(value, str):
            raise bad("must be text")
        if var.max_length and len(value) > var.max_length:
            raise bad(f"is longer than {var.max_length} characters")
        if var.type == "select" and var.options and value not in var.options:
            raise bad(f"must be one of {var.options}")
    if var.type == "checkbox" and not isinstance(value, bool):
        raise bad("must be true or false")
    if var.type == "json_object" and not isinstance(value, dict):
        raise bad("must be a JSON object")
    return value
