"""Current time and time-zone conversion (IANA zones via zoneinfo)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from loom_tools.domain.types import ToolSpec
from loom_tools.errors import InvalidArguments


def _zone(name: str, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArguments(f"argument {field!r}: unknown time zone {name!r}", field=field) from exc


def _describe(moment: datetime) -> dict[str, Any]:
    return {"iso": moment.isoformat(), "timezone": str(moment.tzinfo), "unix": moment.timestamp(),
            "weekday": moment.strftime("%A"), "utc_offset": moment.strftime("%z")}


def now(args: dict[str, Any]) -> dict[str, Any]:
    return _describe(datetime.now(UTC).astimezone(_zone(args.get("timezone", "UTC"), "timezone")))


def convert(args: dict[str, Any]) -> dict[str, Any]:
    try:
        moment = datetime.fromisoformat(args["time"])
    except ValueError as exc:
        raise InvalidArguments(f"argument 'time': not ISO 8601: {args['time']!r}", field="time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(args.get("from_timezone", "UTC"), "from_timezone"))
    return _describe(moment.astimezone(_zone(args["to_timezone"], "to_timezone")))


def zones(args: dict[str, Any]) -> dict[str, Any]:
    prefix = args.get("prefix", "")
    return {"timezones": sorted(z for z in available_timezones() if z.startswith(prefix))}


TOOLS = [
    (ToolSpec("time.now", "Current date and time in a time zone (IANA name, default UTC).", "builtin",
              {"type": "object", "properties": {"timezone": {"type": "string"}}, "additionalProperties": False}),
     now),
    (ToolSpec("time.convert", "Convert an ISO 8601 time to another time zone.", "builtin",
              {"type": "object", "properties": {"time": {"type": "string"}, "from_timezone": {"type": "string"},
                                                "to_timezone": {"type": "string"}},
               "required": ["time", "to_timezone"], "additionalProperties": False}),
     convert),
    (ToolSpec("time.zones", "List IANA time zone names, optionally by prefix (e.g. 'Europe/').", "builtin",
              {"type": "object", "properties": {"prefix": {"type": "string"}}, "additionalProperties": False}),
     zones),
]
