"""The data-analysis template's sample database (templates/data-analysis/make_sample_db.py)
through the real SQL tool runner: it is deterministic, related, thousands of rows, and the tool
keeps it read-only and row-limited, as the template's DSL relies on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from loom_tools.errors import SqlRefused
from loom_tools.sql.runner import SqlRunner, connection_tools

SCRIPT = Path(__file__).resolve().parents[3] / "templates" / "data-analysis" / "make_sample_db.py"


def _make_sample_db():
    spec = importlib.util.spec_from_file_location("make_sample_db", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sqlite")
    counts = _make_sample_db().build(root / "shop.sqlite")
    assert counts["orders"] == 4000 and counts["customers"] == 600 and counts["order_items"] > 5000
    return root / "shop.sqlite"


def test_the_sample_database_is_the_same_bytes_for_a_seed(shop, tmp_path) -> None:
    again = tmp_path / "again.sqlite"
    _make_sample_db().build(again)
    assert again.read_bytes() == shop.read_bytes()


async def test_the_sql_tool_reads_the_sample_database_and_refuses_writes(shop) -> None:
    query, schema = connection_tools("shop", "sqlite", description="sample shop", dsn=None, path=str(shop),
                                     sqlite_roots=[shop.parent])
    runner = SqlRunner(max_rows=50, timeout_ms=5000, sample_rows=2)
    tables = await runner.run(schema, {}, timeout_s=10)
    assert {t["name"] for t in tables["tables"]} == {"customers", "products", "orders", "order_items"}
    items = next(t for t in tables["tables"] if t["name"] == "order_items")
    assert {c["name"] for c in items["columns"]} >= {"order_id", "product_id", "quantity", "unit_price_cents"}

    monthly = await runner.run(query, {"sql": (
        "SELECT strftime('%Y-%m', o.ordered_at) AS month, sum(i.quantity * i.unit_price_cents) / 100.0 AS revenue_eur "
        "FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.status != 'refunded' "
        "GROUP BY month ORDER BY month")}, timeout_s=10)
    assert [c["name"] for c in monthly["columns"]] == ["month", "revenue_eur"]
    assert monthly["row_count"] == 12 and not monthly["truncated"]
    assert all(r[1] > 0 for r in monthly["rows"])

    capped = await runner.run(query, {"sql": "SELECT * FROM order_items"}, timeout_s=10)
    assert capped["row_count"] == 50 and capped["truncated"]

    for write in ("DELETE FROM orders", "UPDATE products SET unit_price_cents = 0",
                  "WITH x AS (SELECT 1) INSERT INTO customers(id) SELECT 1 FROM x", "DROP TABLE orders",
                  "SELECT 1; DELETE FROM orders"):
        with pytest.raises(SqlRefused):
            await runner.run(query, {"sql": write}, timeout_s=10)
    still = await runner.run(query, {"sql": "SELECT count(*) FROM orders"}, timeout_s=10)
    assert still["rows"] == [[4000]]
