"""tickets.create: a built-in that writes a ticket row for the caller's tenant, on the real
Postgres, through the executor (so its schema is enforced: a bad enum or a missing field is
refused with the field named and nothing is stored)."""

from __future__ import annotations

import pytest

from loom_tools.domain.types import Call

pytestmark = pytest.mark.integration

GOOD = {"subject": "Parcel broken", "category": "complaint", "priority": "high",
        "summary": "The parcel arrived broken; the customer is angry.", "customer": "cust-1"}


async def test_tickets_create_writes_a_row_for_the_tenant(toolbox_factory, pool, tenant) -> None:
    box = toolbox_factory()
    assert "tickets.create" in {s.name for s in await box.executor.list(tenant, "builtin")}
    out = await box.executor.invoke(Call(tenant, "tickets.create", GOOD, run_id="run-1"))
    assert out.ok, out.error_message
    assert out.result["status"] == "open" and out.result["priority"] == "high"
    row = await pool.fetchrow("SELECT * FROM tickets WHERE id = $1", int(out.result["id"]))
    assert row["tenant_id"] == tenant and row["run_id"] == "run-1" and row["customer"] == "cust-1"


@pytest.mark.parametrize(("change", "field"), [
    ({"priority": "whenever"}, "priority"), ({"category": "gossip"}, "category"), ({"subject": ""}, "subject"),
    ({"subject": "x" * 201}, "subject"), ({"extra": 1}, "extra"), ({"customer": None}, "customer"),
])
async def test_tickets_create_refuses_bad_arguments_and_stores_nothing(toolbox_factory, pool, tenant, change,
                                                                        field) -> None:
    args = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    out = await toolbox_factory().executor.invoke(Call(tenant, "tickets.create", args))
    assert not out.ok and out.error_code == "invalid_arguments" and field in out.error_field + out.error_message
    assert await pool.fetchval("SELECT count(*) FROM tickets WHERE tenant_id = $1", tenant) == 0


async def test_a_tenant_cannot_register_a_tool_under_tickets(toolbox_factory, tenant) -> None:
    from loom_tools.errors import InvalidArguments

    with pytest.raises(InvalidArguments) as err:
        await toolbox_factory().catalog.register_http(tenant, name="tickets.create", description="", method="POST",
                                                      url="http://127.0.0.1:9/t", parameters=None)
    assert err.value.field == "name"
