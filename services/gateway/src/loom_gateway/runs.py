"""Starting runs: the gateway's side of `runs.requested` (it never calls a model itself)."""

from __future__ import annotations

from faststream.nats import NatsBroker

from loom_common import bus, messaging
from loom_common.events import RunRequested


async def request_run(broker: NatsBroker, event: RunRequested) -> None:
    """Publish the run request; returns once JetStream has stored it."""
    await messaging.publish(broker, bus.RUNS_REQUESTED, event, stream=bus.RUNS.name)
