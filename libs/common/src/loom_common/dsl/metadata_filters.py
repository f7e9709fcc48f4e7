"""Dify's `metadata_filtering_conditions` (the retrieve API's `retrieval_model` and the
knowledge-retrieval node's config), and their translation into rag's metadata filters.

    {"logical_operator": "and" | "or",
     "conditions": [{"name": "<metadata field>", "comparison_operator": "is", "value": "..."}]}

Dify's operators map onto rag's (`loom_rag.store.search.filter_sql`): is/= -> eq, is not/≠ -> ne,
contains, not contains, start with, end with, empty, not empty, in, not in, >, <, ≥, ≤, and for
time fields (unix seconds) before -> lt, after -> gt. Numeric operators take numbers; a number
sent as text ("5") is read as one, as Dify's form sends it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationInfo, field_validator, model_validator

OPERATORS: dict[str, str] = {
    "is": "eq", "=": "eq", "is not": "ne", "≠": "ne", "contains": "contains", "not contains": "not_contains",
    "start with": "starts_with", "end with": "ends_with", "empty": "empty", "not empty": "not_empty",
    "in": "in", "not in": "not_in", ">": "gt", "<": "lt", "≥": "ge", "≤": "le", "before": "lt", "after": "gt",
}
_NUMERIC = ("=", "≠", ">", "<", "≥", "≤", "before", "after")
_NO_VALUE = ("empty", "not empty")
_LISTS = ("in", "not in")
MAX_CONDITIONS = 50


class MetadataCondition(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=255)
    comparison_operator: Literal["contains", "not contains", "start with", "end with", "is", "is not", "empty",
                                 "not empty", "in", "not in", "=", "≠", ">", "<", "≥", "≤", "before", "after"]
    value: JsonValue = None

    @model_validator(mode="after")
    def _value_fits(self) -> MetadataCondition:
        op, v = self.comparison_operator, self.value
        if op in _NO_VALUE:
            self.value = None
        elif op in _LISTS:
            if isinstance(v, str):  # Dify's form sends "a,b"
                v = [s.strip() for s in v.split(",") if s.strip()]
            if not isinstance(v, list) or not v or len(v) > 100 or not all(isinstance(x, str | int | float)
                                                                           for x in v):
                raise ValueError(f"'{op}' needs a list of 1 to 100 values")
            self.value = v
        elif op in _NUMERIC:
            if isinstance(v, str):
                try:
                    v = float(v) if any(c in v for c in ".eE") else int(v)
                except ValueError:
                    raise ValueError(f"'{op}' needs a number") from None
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"'{op}' needs a number")
            self.value = v
        elif not isinstance(v, str) or not v or len(v) > 1000:
            raise ValueError(f"'{op}' needs a text value of 1 to 1000 characters")
        return self


class MetadataFilteringConditions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    logical_operator: Literal["and", "or"] = "and"
    conditions: list[MetadataCondition] = Field(default_factory=list, max_length=MAX_CONDITIONS)

    @field_validator("logical_operator", "conditions", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        # Dify's exports carry null for either when filtering is off.
        if value is None:
            return "and" if info.field_name == "logical_operator" else []
        return value

    def filters(self) -> list[tuple[str, str, JsonValue]]:
        """rag's filters: (key, op, value) triples, combined by `logical_operator`."""
        return [(c.name, OPERATORS[c.comparison_operator], c.value) for c in self.conditions]
