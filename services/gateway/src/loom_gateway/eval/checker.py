"""Tool-call arguments checked as the Berkeley Function-Calling Leaderboard's AST checker does.

For one case the model must make exactly one call, and then, in this order (the first failure
is the verdict's `error_type`):

    wrong_count        no call, or more than one
    not_json           the arguments are not a JSON object          -> not parsed
    wrong_function     the call names another function than expected
    missing_required   a parameter the schema requires is absent
    unexpected_param   a parameter the schema does not know, or one the case does not expect
    type               a value of the wrong JSON type (booleans are never numbers; an integral
                       float is an integer, as JSON Schema counts it; an int is a valid number)
    enum               a value outside the schema's enum
    value              a value equal to none of the case's accepted values after normalisation
    missing_optional   an optional parameter the case expects, left out

Normalisation (BFCL's `standardize_string`, made Unicode-aware): strings are NFKC-folded,
case-folded, and lose whitespace and the characters `,./-_*^`, so "New York" = "new-york" and
"April 1, 2024" = "april 1 2024"; single quotes count as double quotes. Numbers compare by value
(3 = 3.0). Arrays compare in order, except where the schema says the order means nothing
(`uniqueItems: true`, or our `x-unordered: true`), where they compare as multisets. Objects
compare key by key against the case's accepted values, recursively (BFCL goes one level deep).

`schema_valid` is separate and plain: the arguments validate against the function's JSON
schema (jsonschema, draft 2020-12), whatever the expected values.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from loom_gateway.eval.suite import FunctionDef, ToolCase

_DROPPED = re.compile(r"[\s,./\-_*^]")


@dataclass(frozen=True)
class ModelCall:
    name: str
    arguments: str      # the raw JSON text the model produced


@dataclass(frozen=True)
class Verdict:
    parsed: bool         # exactly one call, whose arguments are a JSON object
    schema_valid: bool   # ... that validate against the called function's schema
    right_function: bool
    exact: bool          # the AST check passed
    error_type: str = ""
    error: str = ""


class _Mismatch(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def normalize_string(text: str) -> str:
    return _DROPPED.sub("", unicodedata.normalize("NFKC", text).casefold()).replace("'", '"')


def normalize(value: Any) -> Any:
    """A comparable form: bools tagged (True is not 1), numbers as floats, strings folded."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return normalize_string(value)
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    return value


def _sort_key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, default=str)


def _type_ok(value: Any, kind: str | list[str] | None) -> bool:
    if kind is None:
        return True
    if isinstance(kind, list):
        return any(_type_ok(value, k) for k in kind)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "null":
        return value is None
    return True


def _check_shape(value: Any, schema: Mapping[str, Any], path: str) -> None:
    """Type and enum of a value and, for arrays, of each item (values are compared elsewhere)."""
    if not _type_ok(value, schema.get("type")):
        raise _Mismatch("type", f"{path}: expected {schema.get('type')}, got {type(value).__name__} {value!r}")
    if "enum" in schema and normalize(value) not in [normalize(e) for e in schema["enum"]]:
        raise _Mismatch("enum", f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            _check_shape(item, schema["items"], f"{path}[{i}]")


def _check_object(value: Mapping[str, Any], schema: Mapping[str, Any], expected: Mapping[str, list[Any]],
                  path: str) -> None:
    props: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            raise _Mismatch("missing_required", f"{path}{name}: required but absent")
    for name, item in value.items():
        if name not in props:
            raise _Mismatch("unexpected_param", f"{path}{name}: not a parameter of the schema")
        if name not in expected:
            raise _Mismatch("unexpected_param", f"{path}{name}: given, but the case expects it absent")
        _check_value(item, props[name], expected[name], f"{path}{name}")
    for name, accepted in expected.items():
        if name not in value and None not in accepted:
            raise _Mismatch("missing_optional", f"{path}{name}: expected but absent")


def _check_value(value: Any, schema: Mapping[str, Any], accepted: list[Any], path: str) -> None:
    _check_shape(value, schema, path)
    candidates = [a for a in accepted if a is not None]
    if isinstance(value, dict) and schema.get("type") == "object":
        # Each accepted value is itself a mapping of accepted values: the value passes if it
        # passes against any of them; otherwise the first one's reason is the verdict.
        first: _Mismatch | None = None
        for option in candidates:
            try:
                _check_object(value, schema, option, path + ".")
                return
            except _Mismatch as exc:
                first = first or exc
        raise first or _Mismatch("value", f"{path}: no accepted value")
    got = normalize(value)
    unordered = isinstance(value, list) and bool(schema.get("uniqueItems") or schema.get("x-unordered"))
    if unordered:
        got = sorted(got, key=_sort_key)
    for option in candidates:
        want = normalize(option)
        if unordered and isinstance(want, list):
            want = sorted(want, key=_sort_key)
        if got == want:
            return
    raise _Mismatch("value", f"{path}: {value!r} is none of {candidates}")


def check_call(calls: list[ModelCall], case: ToolCase, functions: Mapping[str, FunctionDef]) -> Verdict:
    """The verdict on one case's model output."""
    if len(calls) != 1:
        return Verdict(False, False, False, False, "wrong_count", f"{len(calls)} calls, expected 1")
    call = calls[0]
    try:
        args = json.loads(call.arguments or "{}")
    except (json.JSONDecodeError, RecursionError):
        return Verdict(False, False, False, False, "not_json", f"arguments are not JSON: {call.arguments[:200]!r}")
    if not isinstance(args, dict):
        return Verdict(False, False, False, False, "not_json", "arguments are JSON but not an object")
    called = functions.get(call.name)
    schema_valid = called is not None and Draft202012Validator(called.parameters).is_valid(args)
    if call.name != case.expected.name:
        return Verdict(True, schema_valid, False, False, "wrong_function",
                       f"called {call.name!r}, expected {case.expected.name!r}")
    try:
        _check_object(args, functions[call.name].parameters, case.expected.arguments, "")
    except _Mismatch as exc:
        return Verdict(True, schema_valid, True, False, exc.kind, str(exc))
    return Verdict(True, schema_valid, True, True)


def reference_arguments(expected: Mapping[str, list[Any]]) -> dict:
    """One call that the case accepts: each argument's first accepted value (recursively for
    objects), optional ones left out. Used to check the shipped cases against themselves."""
    out = {}
    for name, accepted in expected.items():
        if None in accepted:
            continue
        first = accepted[0]
        out[name] = reference_arguments(first) if isinstance(first, dict) else first
    return out
