"""Arguments checked against the tool's JSON schema before anything runs."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from loom_tools.errors import InvalidArguments


def check_schema(schema: dict[str, Any]) -> None:
    """A tool's parameter schema must itself be valid JSON schema describing an object."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidArguments(f"parameters is not a valid JSON schema: {exc.message}",
                               field="parameters") from exc
    if schema.get("type", "object") != "object":
        raise InvalidArguments("parameters must describe an object", field="parameters")


def _field_of(err: ValidationError) -> str:
    path = [str(p) for p in err.absolute_path]
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [r for r in err.validator_value if r not in err.instance]
        if missing:
            path.append(missing[0])
    elif err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in allowed]
        if extra:
            path.append(extra[0])
    return ".".join(path) or "(root)"


def validate_arguments(schema: dict[str, Any], args: Any) -> None:
    if not isinstance(args, dict):
        raise InvalidArguments("arguments must be a JSON object", field="(root)")
    err = best_match(Draft202012Validator(schema).iter_errors(args))
    if err is not None:
        name = _field_of(err)
        raise InvalidArguments(f"argument {name!r}: {err.message}", field=name)
