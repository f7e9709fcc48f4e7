"""Node data of the list and file node types: list-operator and document-extractor.

Both follow Dify's DSL field for field (`filter_by`, `order_by`, `limit`, `extract_by`;
`variable_selector`, `is_array_file`), so a Dify export that uses them imports unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from loom_common.dsl.base import Model, NodeData, ValueSelector

FilterOperator = Literal[
    "contains", "start with", "end with", "is", "in", "empty", "not contains", "is not", "not in", "not empty",
    "=", "≠", "<", ">", "≥", "≤",
]
# What a file's entry in a file list is compared or sorted by (Dify's keys).
FileKey = Literal["name", "type", "extension", "mime_type", "transfer_method", "url", "size"]


class FilterCondition(Model):
    key: str = ""  # for a list of files: one of FileKey; ignored for strings and numbers
    comparison_operator: FilterOperator = "contains"
    value: str | list[str] | bool = ""  # text may hold references: "{{#start.kind#}}"


class FilterBy(Model):
    enabled: bool = False
    conditions: list[FilterCondition] = Field(default_factory=list)


class OrderBy(Model):
    enabled: bool = False
    key: str = ""  # file lists only
    value: Literal["asc", "desc"] = "asc"


class Limit(Model):
    enabled: bool = False
    size: int = Field(default=-1, ge=-1, le=100_000)  # first N; a negative N keeps all but the last -N


class ExtractBy(Model):
    enabled: bool = False
    serial: str = "1"  # 1-based position, or a reference to one


class ListOperatorData(NodeData):
    """Filter, then pick the n-th (extract_by), then sort, then keep the first N of a list of
    strings, numbers or files. Outputs `result`, `first_record` and `last_record`."""

    type: Literal["list-operator"] = "list-operator"
    variable: ValueSelector
    filter_by: FilterBy = Field(default_factory=FilterBy)
    order_by: OrderBy = Field(default_factory=OrderBy)
    limit: Limit = Field(default_factory=Limit)
    extract_by: ExtractBy = Field(default_factory=ExtractBy)

    def selectors(self):
        return [("variable", self.variable)]

    def templates(self):
        out = [(f"filter_by.conditions.{i}.value", c.value) for i, c in enumerate(self.filter_by.conditions)
               if isinstance(c.value, str)]
        return [*out, ("extract_by.serial", self.extract_by.serial)]


class DocumentExtractorData(NodeData):
    """Text of one file or a list of files (PDF, DOCX, HTML, Markdown, TXT, CSV, images and
    scanned PDFs through OCR), parsed in a limited child process. Outputs `text` (a string,
    or a list of strings when `is_array_file`) and `pages`."""

    type: Literal["document-extractor"] = "document-extractor"
    variable_selector: ValueSelector
    is_array_file: bool = False

    def selectors(self):
        return [("variable_selector", self.variable_selector)]
