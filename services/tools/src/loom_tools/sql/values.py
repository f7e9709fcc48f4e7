"""Database values made JSON-safe, and identifier quoting shared by both drivers."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from typing import Any


def jsonable(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, decimal.Decimal):
        return float(v) if v == v.to_integral_value() or abs(v) < 10**15 else str(v)
    if isinstance(v, dt.date | dt.time | dt.datetime):
        return v.isoformat()
    if isinstance(v, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, uuid.UUID | dt.timedelta):
        return str(v)
    return str(v)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
