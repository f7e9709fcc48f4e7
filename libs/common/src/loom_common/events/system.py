"""System events: dead letters for messages a consumer gave up on."""

from __future__ import annotations

from typing import Literal

from loom_common.events.base import Event


class DeadLetter(Event):
    type: Literal["system.dead_letter"] = "system.dead_letter"
    version: Literal[1] = 1

    consumer: str
    subject: str
    deliveries: int
    reason: str
    payload: str  # the original body, as received
