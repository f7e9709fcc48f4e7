"""Accounts and workspaces: first-run setup (once), login, refresh rotation, logout, members,
invitations, and the audit log of console mutations."""

from __future__ import annotations

import pytest
from gateway_testkit import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_setup_runs_once_and_login_refresh_logout(gateway) -> None:
    c = gateway.client
    assert (await c.get("/console/api/setup")).json() == {"step": "not_started"}
    r = await c.post("/console/api/setup", json={"email": "a@x.io", "name": "A", "password": PASSWORD})
    assert r.status_code == 201
    assert (await c.get("/console/api/setup")).json() == {"step": "finished"}
    again = await c.post("/console/api/setup", json={"email": "b@x.io", "name": "B", "password": PASSWORD})
    assert again.status_code == 403 and again.json()["code"] == "already_setup"

    bad = await c.post("/console/api/login", json={"email": "a@x.io", "password": "wrong password"})
    assert bad.status_code == 401 and set(bad.json()) >= {"code", "message", "status"}
    session = (await c.post("/console/api/login", json={"email": "A@x.io", "password": PASSWORD})).json()
    auth = {"Authorization": f"Bearer {session['access_token']}"}
    me = (await c.get("/console/api/account", headers=auth)).json()
    assert me["email"] == "a@x.io" and me["workspaces"][0]["role"] == "owner"

    rotated = await c.post("/console/api/refresh-token", json={"refresh_token": session["refresh_token"]})
    assert rotated.status_code == 200
    reused = await c.post("/console/api/refresh-token", json={"refresh_token": session["refresh_token"]})
    assert reused.status_code == 401  # a refresh token works once

    new_auth = {"Authorization": f"Bearer {rotated.json()['access_token']}"}
    assert (await c.post("/console/api/logout", headers=new_auth)).status_code == 200
    assert (await c.get("/console/api/account", headers=new_auth)).status_code == 401


async def test_invitation_roles_and_audit(gateway, admin) -> None:
    c = gateway.client
    inv = await c.post(admin.ws("/invitations"), json={"email": "ed@x.io", "role": "editor"}, headers=admin.headers)
    assert inv.status_code == 201
    bad_role = await c.post(admin.ws("/invitations"), json={"email": "o@x.io", "role": "owner"},
                            headers=admin.headers)
    assert bad_role.status_code == 400 and bad_role.json()["field"] == "role"
    joined = await c.post("/console/api/invitations/accept", json={"token": inv.json()["token"], "name": "Ed",
                                                                   "password": PASSWORD})
    assert joined.status_code == 200 and joined.json()["workspace_id"] == admin.workspace_id
    ed = {"Authorization": f"Bearer {joined.json()['access_token']}"}
    members = (await c.get(admin.ws("/members"), headers=ed)).json()["data"]
    assert {m["role"] for m in members} == {"owner", "editor"}
    # An editor may not manage members; the owner may change the editor's role.
    ed_id = joined.json()["account_id"]
    assert (await c.patch(admin.ws(f"/members/{ed_id}"), json={"role": "admin"}, headers=ed)).status_code == 403
    assert (await c.patch(admin.ws(f"/members/{ed_id}"), json={"role": "normal"},
                          headers=admin.headers)).status_code == 200

    logs = (await c.get(admin.ws("/audit-logs"), headers=admin.headers)).json()["data"]
    actions = [row["action"] for row in logs]
    assert "invitations.create" in actions and "members.update_role" in actions
    assert "members.update_role" in [r["action"] for r in (await c.get(
        admin.ws("/audit-logs?action=members.update_role"), headers=admin.headers)).json()["data"]]
    # Append-only: the database refuses an UPDATE.
    import asyncpg

    conn = await asyncpg.connect(gateway.database_url, server_settings={"search_path": "gateway"})
    try:
        with pytest.raises(asyncpg.RaiseError):
            await conn.execute("UPDATE audit_log SET action = 'x'")
    finally:
        await conn.close()
