"""The envelope every event shares.

Each concrete event pins `type` (a dotted name) and `version` (an int) as literals, so a
union of events is a pydantic discriminated union and a consumer can refuse a version it
does not know instead of misreading it. A breaking change adds a new class with
`version: Literal[2]`; both live side by side until no producer sends the old one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from loom_common.ids import new_id


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    version: int
    # Unique per event; also sent as JetStream's Nats-Msg-Id, so a re-publish is deduplicated.
    event_id: str = Field(default_factory=new_id)
    occurred_at: datetime = Field(default_factory=utcnow)
    tenant_id: str
