"""Built-in tools and argument validation, in process (no database: the executor runs
with built-ins only)."""

from __future__ import annotations

from datetime import datetime

import pytest

from loom_tools.builtins import BuiltinRunner, catalog
from loom_tools.domain.executor import Executor
from loom_tools.domain.types import Call


@pytest.fixture
def executor() -> Executor:
    builtins = {name: spec for name, (spec, _) in catalog().items()}
    return Executor(None, builtins, {"builtin": BuiltinRunner()}, None)


async def invoke(executor: Executor, tool: str, **args):
    return await executor.invoke(Call("t1", tool, args))


@pytest.mark.parametrize(("expr", "value"), [
    ("1 + 2 * 3", 7), ("(2 + 3) * sqrt(16)", 20.0), ("2 ** 10", 1024), ("-7 // 2", -4), ("round(pi, 2)", 3.14),
    ("max(1, 5, 3) % 4", 1),
])
async def test_tools_math_eval(executor, expr, value):
    out = await invoke(executor, "math.eval", expression=expr)
    assert out.ok and out.result["result"] == value


@pytest.mark.parametrize("expr", [
    "__import__('os').system('id')", "().__class__.__bases__", "open('/etc/passwd')", "9 ** 9 ** 9",
    "10 ** 400 * 10 ** 400", "lambda: 1", "[1, 2]", "1 / 0", "x + 1", "1 +",
])
async def test_tools_math_eval_refuses_anything_but_arithmetic(executor, expr):
    out = await invoke(executor, "math.eval", expression=expr)
    assert not out.ok and out.error_code == "invalid_arguments" and out.error_field == "expression"


async def test_tools_time(executor):
    out = await invoke(executor, "time.now", timezone="Asia/Tokyo")
    assert out.ok and out.result["utc_offset"] == "+0900" and out.result["timezone"] == "Asia/Tokyo"
    datetime.fromisoformat(out.result["iso"])
    conv = await invoke(executor, "time.convert", time="2026-01-15T12:00:00", from_timezone="Europe/Paris",
                        to_timezone="America/New_York")
    assert conv.ok and conv.result["iso"] == "2026-01-15T06:00:00-05:00"
    zones = await invoke(executor, "time.zones", prefix="Europe/")
    assert "Europe/Paris" in zones.result["timezones"]
    bad = await invoke(executor, "time.now", timezone="Mars/Olympus")
    assert bad.error_code == "invalid_arguments" and bad.error_field == "timezone"


async def test_tools_json_query_and_text(executor):
    data = {"items": [{"name": "a", "price": 5}, {"name": "b", "price": 15}]}
    out = await invoke(executor, "json.query", data=data, expression="items[?price > `10`].name")
    assert out.ok and out.result == {"result": ["b"]}
    bad = await invoke(executor, "json.query", data=data, expression="items[?")
    assert bad.error_code == "invalid_arguments" and bad.error_field == "expression"

    assert (await invoke(executor, "text.stats", text="two words\nline")).result == {
        "characters": 14, "words": 3, "lines": 2, "bytes_utf8": 14}
    assert (await invoke(executor, "text.transform", text="  a   b ", operation="collapse_whitespace")
            ).result == {"text": "a b"}
    assert (await invoke(executor, "text.extract", text="a1 b22 c333", pattern=r"\d+")).result == {
        "matches": ["1", "22", "333"]}
    assert (await invoke(executor, "text.truncate", text="abcdef", max_chars=4)).result == {
        "text": "abc…", "truncated": True}


@pytest.mark.parametrize(("tool", "args", "field"), [
    ("math.eval", {}, "expression"),                                  # missing required
    ("math.eval", {"expression": 12}, "expression"),                  # wrong type
    ("math.eval", {"expression": "1", "extra": 1}, "extra"),          # unknown field
    ("text.transform", {"text": "x", "operation": "shout"}, "operation"),  # not in enum
    ("text.truncate", {"text": "x", "max_chars": 0}, "max_chars"),    # below minimum
])
async def test_tools_arguments_validated_before_running_naming_the_field(executor, tool, args, field):
    out = await executor.invoke(Call("t1", tool, args))
    assert not out.ok and out.error_code == "invalid_arguments" and out.error_field == field
    assert field in out.error_message


async def test_tools_unknown_tool_is_not_found(executor):
    out = await invoke(executor, "no.such.tool")
    assert out.error_code == "not_found" and out.error_field == "tool"
