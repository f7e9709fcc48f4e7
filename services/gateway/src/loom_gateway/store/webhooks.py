"""Webhook triggers of workflow apps: a URL per app and a secret that signs its requests.

Signing (what a caller computes, docs/api.md shows it with openssl):

    X-Loom-Timestamp: <unix seconds>
    X-Loom-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body bytes)>

Refused with 401, in this order: no or malformed headers; a timestamp further than the replay
window from the gateway's clock (either way); a signature that does not match (compared in
constant time); a signature already seen within the window (the same request sent again).

The secret is shown once, when it is made (create or rotate), and kept sealed (sealing.py):
verifying needs the secret itself, so a hash would not do. No route returns it afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import asyncpg

from loom_gateway.domain.errors import NotFound, Unauthorized
from loom_gateway.domain.schedules import Clock, utcnow
from loom_gateway.domain.sealing import Sealer

SECRET_PREFIX = "whsec_"
ID_PREFIX = "wh_"
TIMESTAMP_HEADER = "x-loom-timestamp"
SIGNATURE_HEADER = "x-loom-signature"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The header value a correctly signed request carries."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class Webhooks:
    def __init__(self, pool: asyncpg.Pool, sealer: Sealer, *, window_s: int = 300, now: Clock = utcnow) -> None:
        self.pool = pool
        self.sealer = sealer
        self.window_s = window_s
        self.now = now

    async def make(self, tenant_id: str, app_id: str) -> dict:
        """Create the app's webhook, or rotate its secret (its URL stays): the secret, once."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        row = await self.pool.fetchrow(
            "INSERT INTO app_webhooks (app_id, tenant_id, id, secret) SELECT id, tenant_id, $3, $4 FROM apps"
            " WHERE id = $1 AND tenant_id = $2"
            " ON CONFLICT (app_id) DO UPDATE SET secret = $4, rotated_at = now() RETURNING id, created_at, rotated_at",
            app_id, tenant_id, ID_PREFIX + secrets.token_urlsafe(18), self.sealer.seal(secret))
        if row is None:
            raise NotFound("App not found.", code="app_not_found")
        return {**_body(row), "secret": secret}

    async def get(self, tenant_id: str, app_id: str) -> dict | None:
        row = await self.pool.fetchrow("SELECT id, created_at, rotated_at FROM app_webhooks"
                                       " WHERE app_id = $1 AND tenant_id = $2", app_id, tenant_id)
        return _body(row) if row else None

    async def delete(self, tenant_id: str, app_id: str) -> None:
        done = await self.pool.execute("DELETE FROM app_webhooks WHERE app_id = $1 AND tenant_id = $2",
                                       app_id, tenant_id)
        if done.endswith(" 0"):
            raise NotFound("The app has no webhook.", code="webhook_not_found")

    async def verify(self, webhook_id: str, timestamp: str | None, sig: str | None, body: bytes
                     ) -> tuple[str, str]:
        """(tenant id, app id) of a correctly signed, fresh, first-seen request; else 401."""
        if not timestamp or not sig or not timestamp.isdigit() or len(timestamp) > 12:
            raise Unauthorized(f"Signed requests only: {TIMESTAMP_HEADER} (unix seconds) and {SIGNATURE_HEADER}"
                               " (sha256=<hex>) are required.", code="invalid_signature")
        if abs(self.now().timestamp() - int(timestamp)) > self.window_s:
            raise Unauthorized(f"The request's timestamp is more than {self.window_s} s from the gateway's clock.",
                               code="invalid_signature")
        row = await self.pool.fetchrow("SELECT tenant_id, app_id, secret FROM app_webhooks WHERE id = $1",
                                       webhook_id)
        secret = self.sealer.open(row["secret"]) if row else None
        # An unknown webhook answers as a bad signature does: ids cannot be probed.
        if secret is None or not hmac.compare_digest(signature(secret, timestamp, body), sig.strip()):
            raise Unauthorized("The request's signature does not match.", code="invalid_signature")
        first = await self.pool.fetchval(
            "INSERT INTO webhook_deliveries (signature, webhook_id, seen_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (signature) DO NOTHING RETURNING 1", sig.strip(), webhook_id, self.now())
        if first is None:
            raise Unauthorized("This request was already received (replayed).", code="invalid_signature")
        return row["tenant_id"], row["app_id"]

    async def sweep(self) -> int:
        """Signatures older than the window can no longer be replayed (their timestamp is stale)."""
        done = await self.pool.execute("DELETE FROM webhook_deliveries WHERE seen_at < $1",
                                       datetime.fromtimestamp(self.now().timestamp() - 2 * self.window_s,
                                                              tz=self.now().tzinfo))
        return int(done.split()[-1])


def _body(row) -> dict:
    return {"id": row["id"], "path": f"/v1/webhooks/{row['id']}", "created_at": int(row["created_at"].timestamp()),
            "rotated_at": int(row["rotated_at"].timestamp())}
