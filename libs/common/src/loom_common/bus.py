"""The whole bus in one place: every JetStream stream, subject and durable consumer.

No other module writes a subject string; templated subjects are functions here.

    stream            subjects                 retention   who publishes -> who consumes
    RUNS              runs.requested           work queue  gateway -> orchestrator (orchestrator-runs)
    RUN_CONTROL       runs.cancel.<run_id>     limits 1h   gateway -> every orchestrator worker
    RUN_EVENTS        run.<run_id>.events      limits 7d   orchestrator -> gateway (SSE, replay)
    RUN_OUTCOMES      runs.finished            work queue  orchestrator -> gateway (gateway-run-outcomes)
    DOCUMENTS         documents.ingest         work queue  gateway/rag api -> rag workers (rag-ingest)
    DOCUMENT_EVENTS   document.<id>.events     limits 1d   rag -> gateway, console
    DEAD_LETTERS      dlq.<consumer>           limits 30d  any consumer that gives up -> operators

Work queues are consumed by pull consumers, so adding workers spreads the load; each
consumer names its ack policy (always manual, settled by `messaging.handling`), its
`ack_wait` and its `max_deliver`.
"""

from __future__ import annotations

from dataclasses import dataclass

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, PullSub, RetentionPolicy
from nats.js.api import StorageType

DAY_S = 24 * 3600.0

# ---- streams -----------------------------------------------------------------------------

RUNS = JStream(
    "RUNS",
    subjects=["runs.requested"],
    retention=RetentionPolicy.WORK_QUEUE,
    storage=StorageType.FILE,
    declare=False,  # created by messaging.ensure_streams with every subject
    duplicate_window=120.0,
    description="Run requests, each taken by exactly one orchestrator worker.",
)
RUN_CONTROL = JStream(
    "RUN_CONTROL",
    subjects=["runs.cancel.*"],
    retention=RetentionPolicy.LIMITS,
    max_age=3600.0,
    storage=StorageType.FILE,
    declare=False,  # created by messaging.ensure_streams with every subject
    description="Stop requests; every worker sees them, the one running the run acts.",
)
RUN_EVENTS = JStream(
    "RUN_EVENTS",
    subjects=["run.*.events"],
    retention=RetentionPolicy.LIMITS,
    max_age=7 * DAY_S,
    storage=StorageType.FILE,
    declare=False,  # created by messaging.ensure_streams with every subject
    duplicate_window=120.0,
    description="Ordered events of every run, replayable by seq.",
)
RUN_OUTCOMES = JStream(
    "RUN_OUTCOMES",
    subjects=["runs.finished"],
    retention=RetentionPolicy.WORK_QUEUE,
    storage=StorageType.FILE,
    declare=False,  # created by messaging.ensure_streams with every subject
    duplicate_window=120.0,
    description="Each run's end (or pause), recorded by one gateway whether or not a client watched.",
)
DOCUMENTS = JStream(
    "DOCUMENTS",
    subjects=["documents.ingest"],
    retention=RetentionPolicy.WORK_QUEUE,
    storage=StorageType.FILE,
    declare=False,  # created by messaging.ensure_streams with every subject
    duplicate_window=120.0,
    description="Documents waiting to be parsed, split, embedded and indexed.",
)
DOCUMENT_EVENTS = JStream(
    "DOCUMENT_EVENTS",
    subjects=["document.*.events"],
    retention=RetentionPolicy.LIMITS,
    max_age=DAY_S,
    storage=StorageType.FILE,
    declare=False,  # created by messaging.ensure_streams with every subject
    description="Ingestion progress per document.",
)
DEAD_LETTERS = JStream(
    "DEAD_LETTERS",
    subjects=["dlq.*"],
    retention=RetentionPolicy.LIMITS,
    max_age=30 * DAY_S,
    storage=StorageType.FILE,
    declare=False,  # created by messaging.ensure_streams with every subject
    description="Messages a consumer gave up on, kept for operators.",
)

ALL_STREAMS: tuple[JStream, ...] = (RUNS, RUN_CONTROL, RUN_EVENTS, RUN_OUTCOMES, DOCUMENTS, DOCUMENT_EVENTS,
                                    DEAD_LETTERS)

# ---- subjects ----------------------------------------------------------------------------

RUNS_REQUESTED = "runs.requested"
RUNS_FINISHED = "runs.finished"
DOCUMENTS_INGEST = "documents.ingest"


def run_cancel(run_id: str) -> str:
    return f"runs.cancel.{run_id}"


def run_events(run_id: str) -> str:
    return f"run.{run_id}.events"


def document_events(document_id: str) -> str:
    return f"document.{document_id}.events"


def dead_letter(consumer: str) -> str:
    return f"dlq.{consumer}"


RUN_CANCEL_ALL = run_cancel("*")

# ---- consumers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    """A durable pull consumer on one subject of one stream."""

    durable: str
    stream: JStream
    subject: str
    ack_wait_s: float  # redelivered if not acked (or marked in progress) within this
    max_deliver: int  # deliveries in all; after the last failure it goes to dlq.<durable>
    batch_size: int = 1  # messages fetched per pull

    def subscriber_kwargs(self) -> dict:
        """Keyword arguments for `broker.subscriber(...)` / `router.subscriber(...)`."""
        return {
            "subject": self.subject,
            "stream": self.stream,
            "durable": self.durable,
            "pull_sub": PullSub(batch_size=self.batch_size, timeout=1.0),
            "config": ConsumerConfig(ack_wait=self.ack_wait_s, max_deliver=self.max_deliver),
            "ack_policy": AckPolicy.MANUAL,
        }


ORCHESTRATOR_RUNS = Consumer(
    durable="orchestrator-runs", stream=RUNS, subject=RUNS_REQUESTED, ack_wait_s=60.0, max_deliver=5
)
# A run's outcome is recorded idempotently (the first record of a run's end wins), so a
# redelivery is harmless; many deliveries ride out a Postgres restart before a dead letter.
# Recording one is a single short transaction: a short ack wait and small batches, so what a
# stopping or killed gateway had fetched reaches another replica within seconds.
GATEWAY_RUN_OUTCOMES = Consumer(
    durable="gateway-run-outcomes", stream=RUN_OUTCOMES, subject=RUNS_FINISHED, ack_wait_s=10.0, max_deliver=20,
    batch_size=4,
)
RAG_INGEST = Consumer(
    durable="rag-ingest", stream=DOCUMENTS, subject=DOCUMENTS_INGEST, ack_wait_s=120.0, max_deliver=5
)

ALL_CONSUMERS: tuple[Consumer, ...] = (ORCHESTRATOR_RUNS, GATEWAY_RUN_OUTCOMES, RAG_INGEST)
