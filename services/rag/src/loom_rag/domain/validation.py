"""Input checks shared by the management and retrieval services; each names the bad field."""

from __future__ import annotations

import json
import uuid
from typing import Any

from loom_rag.domain.errors import InvalidArgument


def uuid_(field: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(field, f"not a valid id: {value!r}") from None


def json_object(field: str, text: str | None) -> dict[str, Any] | None:
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(field, f"not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(field, "must be a JSON object")
    return value


def json_value(field: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(field, f"not valid JSON: {exc.msg}") from None


def paging(page: int, limit: int) -> tuple[int, int, int]:
    """(page, limit, offset) with Dify's defaults: page 1, limit 20, at most 100."""
    page = page or 1
    limit = limit or 20
    if page < 1:
        raise InvalidArgument("page", "must be 1 or more")
    if not 1 <= limit <= 100:
        raise InvalidArgument("limit", "must be between 1 and 100")
    return page, limit, (page - 1) * limit
