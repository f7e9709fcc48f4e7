"""Dify's metadata_filtering_conditions -> rag's filters: every Dify operator maps to one of
rag's, numbers sent as text are read as numbers, lists from "a,b", nulls as defaults (Dify's
exports), and values that do not fit their operator are refused naming the condition."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loom_common.dsl.ai_nodes import KnowledgeRetrievalData
from loom_common.dsl.metadata_filters import OPERATORS, MetadataFilteringConditions


def _one(op: str, value) -> tuple:
    return MetadataFilteringConditions.model_validate(
        {"conditions": [{"name": "f", "comparison_operator": op, "value": value}]}).filters()[0]


def test_every_dify_operator_maps_to_a_rag_operator() -> None:
    rag_ops = {"eq", "ne", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with", "empty",
               "not_empty", "gt", "lt", "ge", "le"}
    assert set(OPERATORS.values()) == rag_ops
    assert _one("is", "en") == ("f", "eq", "en")
    assert _one("≥", "2022") == ("f", "ge", 2022) and _one("<", "1.5") == ("f", "lt", 1.5)
    assert _one("before", 1700000000) == ("f", "lt", 1700000000) and _one("after", "5")[1] == "gt"
    assert _one("in", "a, b") == ("f", "in", ["a", "b"]) and _one("not in", ["x"]) == ("f", "not_in", ["x"])
    assert _one("empty", "ignored") == ("f", "empty", None)


def test_nulls_are_defaults_and_logic_is_kept() -> None:
    c = MetadataFilteringConditions.model_validate({"logical_operator": None, "conditions": None})
    assert c.logical_operator == "and" and c.filters() == []
    c = MetadataFilteringConditions.model_validate({"logical_operator": "or", "conditions": [
        {"name": "a", "comparison_operator": "is", "value": "x", "id": "dify-ui-id"}]})
    assert c.logical_operator == "or" and c.filters() == [("a", "eq", "x")]


@pytest.mark.parametrize(("op", "value"), [(">", "many"), ("=", True), ("in", []), ("is", ""), ("is", 5),
                                           ("contains", "x" * 1001), ("≤", float("inf")), ("like", "x")])
def test_a_value_unfit_for_its_operator_is_refused(op: str, value) -> None:
    with pytest.raises(ValidationError) as err:
        _one(op, value)
    assert err.value.errors()[0]["loc"][:2] == ("conditions", 0)


def test_the_node_keeps_manual_filters() -> None:
    node = KnowledgeRetrievalData.model_validate({
        "type": "knowledge-retrieval", "query_variable_selector": ["sys", "query"], "dataset_ids": ["d"],
        "metadata_filtering_mode": "manual",
        "metadata_filtering_conditions": {"conditions": [{"name": "y", "comparison_operator": "≥", "value": "1"}]}})
    assert node.metadata_filtering_conditions.filters() == [("y", "ge", 1)]
    with pytest.raises(ValidationError):
        KnowledgeRetrievalData.model_validate({"type": "knowledge-retrieval", "query_variable_selector": ["sys", "q"],
                                               "dataset_ids": ["d"], "metadata_filtering_mode": "sometimes"})
