"""The answer the gateway records from a chat's events (`execution.Fold`) is the run's own, as
runs.finished carries it: text that an llm node streamed before it was retried was shown to the
client, but is not part of the answer. No stack: the events are written here."""

from __future__ import annotations

from loom_common.events import RunEvent
from loom_gateway.domain.execution import Fold


def test_text_streamed_before_a_retry_is_not_part_of_the_recorded_answer() -> None:
    script = [("workflow_started", {}), ("node_started", {"node_id": "llm"}),
              ("message", {"answer": "The se"}),
              ("node_retry", {"node_id": "llm", "error": "inference restarted", "retry_index": 1}),
              ("message", {"answer": "The sea is wide."}),
              ("node_finished", {"node_id": "llm"}),
              ("workflow_finished", {"status": "succeeded", "outputs": {"answer": "The sea is wide."}}),
              ("message_end", {"metadata": {"usage": {"total_tokens": 9}}})]
    fold = Fold()
    for seq, (event, data) in enumerate(script, start=1):
        fold.add(RunEvent(tenant_id="t1", run_id="r1", seq=seq, event=event, data=data), True)
    assert (fold.answer, fold.status, fold.finished) == ("The sea is wide.", "succeeded", True)
