"""template-transform under attack (issue 18, point 5): `{{ 'a' * 50000000 }}` once rendered
on the orchestrator's event loop. The run engine with the real node now fails such runs
with a message naming the limit, and a slow template keeps the event loop free."""

from __future__ import annotations

import pytest
from orchestrator_testkit import chain, node, tpl

from loom_common.testing import loop_ticks

START = node("start", "start", variables=[{"variable": "items", "type": "json_object", "required": False}])


def graph(template: str) -> dict:
    return {"nodes": [START, tpl("t", template, items=["start", "items"]),
                      node("end", "end", outputs=[{"variable": "r", "value_selector": ["t", "output"]}])],
            "edges": chain("start", "t", "end")}


@pytest.mark.parametrize(("template", "why"), [
    ("{{ 'a' * 50000000 }}", "over the 1000000 limit"),
    ("{{ 'a'.ljust(100000000) }}", "over the 1000000 limit"),
    ("{{ 'x'|center(100000000) }}", "over the 1000000 limit"),
    ("{{ '{:>999999999}'.format(1) }}", "format width"),
    ("{{ 2 ** 100000000 }}", "bits"),
    ("{% for i in range(10000000) %}{% endfor %}", "range() of 10000000 items"),
    ("{% for i in range(10000) %}{{ 'x' * 100 }}{% endfor %}", "output is longer than 400000"),
])
async def test_orchestrator_template_budget_refuses(harness, template, why) -> None:
    out = await harness.run(graph(template), {"items": {"k": 1}})
    assert out.status == "failed" and why in out.error, out.error


async def test_orchestrator_slow_template_stops_at_its_deadline_off_the_event_loop(harness) -> None:
    """Nested loops over input data with no output touch no size check: the deadline stops
    them (inside the worker thread), and the event loop ticks meanwhile."""
    slow = "{% for a in items.xs %}{% for b in items.xs %}{% for c in items.xs %}{% endfor %}{% endfor %}{% endfor %}"
    async with loop_ticks() as ticks:
        out = await harness.run(graph(slow), {"items": {"xs": list(range(3000))}})
    assert out.status == "failed" and "time limit" in out.error, out.error
    assert ticks.count > 10  # on the loop, the render would have allowed none


async def test_orchestrator_ordinary_templates_still_render(harness) -> None:
    t = "{% for k, v in items.items() %}{{ k }}={{ v }};{% endfor %}{{ 'ab' * 2 }}{{ 'x'|center(3) }}"
    out = await harness.run(graph(t), {"items": {"a": 1, "b": 2}})
    assert out.status == "succeeded" and out.outputs == {"r": "a=1;b=2;abab x "}, out.error
