"""The data-analysis template end to end on the real stack (inference, rag, tools, orchestrator,
gateway as processes; real NATS and Postgres): the sample database written by the template's
script under the tools service's SQLite root, the template installed in one call (which
registers that database as the workspace's SQL connection `shop`), published, and asked
through the Dify API.

The model is the template tests' scripted backend (template_testkit.ScriptedModel: a SCRIPTED
OpenAI-compatible server on loopback, registered with the real inference service for the
workspace; it is not a model): the text-to-SQL prompt gets a fixed SQL (a DELETE
when the question asks to delete, one that returns no rows when it says "nothing"), the retry
prompt a good SQL, the chart prompt a fixed Vega-Lite spec. It records the prompts, so the
assertions are on behaviour and structure: the schema reaches the prompt, the answer carries an
SVG chart file, a writing query is refused by the SQL tool before it runs (the data unchanged),
an empty result or an unknown column is asked again exactly once."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import re
import sqlite3
from pathlib import Path

import pytest
from template_testkit import ScriptedModel, install_template

from loom.tools.v1 import tools_pb2 as pb
from loom.tools.v1 import tools_pb2_grpc
from loom_common.testing import service_channel

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

SCRIPTED = "scripted-sql"
TEMPLATE = Path(__file__).resolve().parents[3] / "templates" / "data-analysis"
GOOD_SQL = ("SELECT strftime('%Y-%m', o.ordered_at) AS month, "
            "round(sum(i.quantity * i.unit_price_cents) / 100.0, 2) AS revenue_eur "
            "FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.status != 'refunded' "
            "GROUP BY month ORDER BY month LIMIT 200")
EMPTY_SQL = "SELECT id, status FROM orders WHERE status = 'lost' LIMIT 200"
WRITE_SQL = "DELETE FROM orders WHERE status = 'refunded'"
UNKNOWN_SQL = "SELECT region, count(*) AS n FROM orders GROUP BY region"  # orders has no region
SPEC = {"mark": "line", "title": "Revenue per month",
        "encoding": {"x": {"field": "month", "type": "ordinal"}, "y": {"field": "revenue_eur", "type": "quantitative"}}}


def _answer(messages: list[dict]) -> str:
    """The scripted backend's reply, by prompt kind."""
    system, question = messages[0]["content"], messages[-1]["content"].lower()
    if system.startswith("You choose a chart"):
        return "```json\n" + json.dumps(SPEC) + "\n```"
    if "Your previous query was" in system:  # asked again after a failed check
        return GOOD_SQL
    if "delete" in question:
        return WRITE_SQL
    if "region" in question:
        return UNKNOWN_SQL
    return f"```sql\n{EMPTY_SQL if 'nothing' in question else GOOD_SQL}\n```"


def _kinds(model: ScriptedModel) -> list[str]:
    return ["chart" if p[0]["content"].startswith("You choose a chart") else
            "retry" if "Your previous query was" in p[0]["content"] else "sql" for p in model.prompts]


@pytest.fixture
def scripted_model():
    with ScriptedModel(SCRIPTED, _answer) as model:
        yield model


def _sample_db(stack) -> Path:
    """The template's sample database, written under the stack's tools service SQLite root."""
    home = Path(next(p for p in stack.procs if p.name == "tools").env["LOOM_HOME"])
    spec = importlib.util.spec_from_file_location("make_sample_db", TEMPLATE / "make_sample_db.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = home / "tools" / "sqlite" / "shop.sqlite"
    mod.build(path)
    return path


async def _tools(stack, workspace_id: str) -> set[str]:
    """The workspace's tools, as the tools service lists them."""
    tools_addr = next(p for p in stack.procs if p.name == "tools").env["LOOM_TOOLS_ADDR"]
    async with service_channel(tools_addr) as channel:
        listed = await tools_pb2_grpc.ToolsStub(channel).ListTools(pb.ListToolsRequest(tenant_id=workspace_id),
                                                                   timeout=30)
    return {t.name for t in listed.tools}


def _chart_svg(answer: str) -> bytes:
    found = re.search(r"\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", answer)
    assert found, answer[:500]
    return base64.b64decode(found.group(1))


def test_data_analysis_template_answers_with_a_chart_and_refuses_a_write(stack, scripted_model) -> None:
    db = _sample_db(stack)
    with stack.http() as http:
        # The install registers the template's connection `shop` (the sample database above).
        app = install_template(stack, http, "data-analysis", workspace="da-template", scripted=scripted_model)
        assert {"shop.query", "shop.schema"} <= asyncio.run(_tools(stack, app.workspace_id))
        key = app.key

        def ask(query: str) -> str:
            r = http.post(f"{stack.gateway_url}/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                          timeout=180, json={"inputs": {}, "query": query, "user": "analyst",
                                             "response_mode": "blocking"})
            assert r.status_code == 200, r.text
            return r.json()["answer"]

        # A question: the schema reaches the text-to-SQL prompt, the query runs, the chart comes back.
        answer = ask("What was the revenue per month in 2024?")
        assert _kinds(scripted_model) == ["sql", "chart"]
        schema_prompt = scripted_model.prompts[0][0]["content"]
        assert all(t in schema_prompt for t in ("order_items", "unit_price_cents", "customers"))
        assert answer.startswith("12 rows") and GOOD_SQL in answer
        svg = _chart_svg(answer)
        assert svg.startswith(b"<svg") and b"2024-12" in svg
        # The chart prompt saw the real result's columns.
        assert "revenue_eur" in scripted_model.prompts[1][0]["content"]

        # A query that writes: refused by the SQL tool's guard before it reaches the database.
        refused = ask("Please delete the refunded orders.")
        assert refused.startswith("The query was not run") and "sql_refused" in refused, refused
        assert "data:image" not in refused
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            assert conn.execute("SELECT count(*) FROM orders WHERE status = 'refunded'").fetchone()[0] > 0
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 4000

        # An empty result fails the check: asked again exactly once, with the problem, then charted.
        before = len(scripted_model.prompts)
        retried = ask("Show nothing but the lost orders per month.")
        assert _kinds(scripted_model)[before:] == ["sql", "retry", "chart"]
        assert "returned no rows" in scripted_model.prompts[before + 1][0]["content"]
        assert _chart_svg(retried).startswith(b"<svg") and GOOD_SQL in retried

        # An unknown column is not a refusal but a mistake: the database's message goes back once.
        before = len(scripted_model.prompts)
        fixed = ask("Orders per region?")
        assert _kinds(scripted_model)[before:] == ["sql", "retry", "chart"]
        assert "no such column: region" in scripted_model.prompts[before + 1][0]["content"]
        assert _chart_svg(fixed).startswith(b"<svg")


# Every way the template's graph can end, by the answer node that ends it.
ENDINGS = ("rows from:", "The chart could not be drawn", "The query was not run", "The corrected query was not run",
           "Even after a second try")


def test_data_analysis_template_runs_on_the_bundled_model(stack) -> None:
    """The real bundled model (a 270M base model: it cannot write SQL) drives the same graph:
    structure only, the run ends on one of the template's answers and the data is unchanged."""
    db = _sample_db(stack)
    with stack.http() as http:
        # A loaded 2-core box decodes ~10 tokens/s: a short budget per model node (structure only).
        app = install_template(stack, http, "data-analysis", workspace="da-bundled", body={"model": "gemma3:270m"},
                               max_tokens=24)
        key = app.key
        r = http.post(f"{stack.gateway_url}/v1/chat-messages", headers={"Authorization": f"Bearer {key}"},
                      timeout=240, json={"inputs": {}, "query": "How many orders were shipped?", "user": "analyst",
                                         "response_mode": "blocking"})
        assert r.status_code == 200, r.text
        answer = r.json()["answer"]
        assert any(e in answer for e in ENDINGS), answer[:500]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 4000
