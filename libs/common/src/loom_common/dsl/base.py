"""What every node of the DSL shares: identity, the failure policy and the shared value types.

Field names follow Dify's workflow DSL (so a Dify export maps onto them with few changes):
`retry_config`, `error_strategy` (`fail-branch` | `default-value`), `default_value`, plus
Loom's `timeout_s` (Dify has none per node).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from loom_common.dsl.references import RESERVED_SCOPES


class Model(BaseModel):
    # Unknown keys are ignored, not refused: Dify exports carry UI-only fields (selected,
    # width, desc, ...) that mean nothing to the engine.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def check_selector(value: list[str]) -> list[str]:
    if len(value) < 2 or not all(isinstance(p, str) and p for p in value):
        raise ValueError("a variable selector is [node_id, field, ...] with at least two non-empty parts")
    return value


ValueSelector = Annotated[list[str], AfterValidator(check_selector)]


class RetryConfig(Model):
    retry_enabled: bool = False
    max_retries: int = Field(default=3, ge=0, le=10)
    retry_interval: int = Field(default=1000, ge=0, le=60_000, description="ms before the first retry; doubles")


class DefaultValue(Model):
    key: str
    type: str = "string"
    value: JsonValue = None


class NodeData(Model):
    """Fields every node type has; each node type subclasses it with a literal `type`."""

    type: str
    title: str = ""
    desc: str = ""
    version: str = "1"
    retry_config: RetryConfig = Field(default_factory=RetryConfig)
    error_strategy: Literal["fail-branch", "default-value"] | None = None
    default_value: list[DefaultValue] = Field(default_factory=list)
    timeout_s: float | None = Field(default=None, gt=0, le=3600, description="per attempt; None = the engine's")

    def selectors(self) -> list[tuple[str, list[str]]]:
        """(field, selector) pairs this node reads, for reference checking. Subclasses extend."""
        return []

    def templates(self) -> list[tuple[str, str]]:
        """(field, template text) pairs holding `{{#...#}}` references."""
        return []


class VariableSelector(Model):
    """A named input bound to a selector (code, template-transform, end outputs)."""

    variable: str
    value_selector: ValueSelector


class Condition(Model):
    """One comparison of an if-else case, a loop's break condition or a filter."""

    variable_selector: ValueSelector
    comparison_operator: Literal[
        "contains", "not contains", "start with", "end with", "is", "is not", "empty", "not empty",
        "in", "not in", "all of", "=", "≠", ">", "<", "≥", "≤", "null", "not null", "exists", "not exists",
    ]
    value: Any = None


def is_reserved(selector: list[str]) -> bool:
    return selector[0] in RESERVED_SCOPES
