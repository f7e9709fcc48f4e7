"""Settings of the orchestrator service (env prefix `LOOM_ORCHESTRATOR_`; shared ones keep `LOOM_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from loom_common.blobs import StorageSettings
from loom_common.settings import ServiceSettings


class OrchestratorSettings(ServiceSettings, StorageSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_ORCHESTRATOR_", extra="ignore",
                                      populate_by_name=True)

    http_port: int = 8081
    # Runs one worker process executes at once (FastStream max_workers on the runs consumer).
    max_concurrent_runs: int = 8
    # A run's message is redelivered if its worker neither acks nor marks it in progress
    # within this; a live run heartbeats every quarter of it (`lease.py`), so a crashed
    # worker's run moves to another worker 3 to 4 s after the crash, and a worker stalled for
    # up to ~2.75 s (CPU starvation, GC, a blocked loop) keeps its runs. Longer: a stall must
    # last longer to lose a run, and a crash costs that much more. Applied to an existing
    # consumer at start (loom_common.consumers.align, run by the runtime).
    runs_ack_wait_s: float = 4.0
    # How long a worker waits out Postgres being unreachable (a restart, a failover) before it
    # gives a run back to the queue (Worker._run_through_db_outages).
    db_outage_patience_s: float = 60.0
    # Per-run limits (RunLimits).
    max_steps: int = 1000
    max_wall_s: float = 600.0
    node_timeout_s: float = 120.0
    model_timeout_s: float = 300.0
    max_parallel_nodes: int = 8
    # The file store the gateway writes uploads to (document-extractor reads a run's files from
    # it): `StorageSettings`, the same folder (default: the gateway's, $LOOM_HOME/gateway/files)
    # or the same bucket.
    # Files parsed at once by one orchestrator process (an OCR child holds ~600 MB).
    max_concurrent_extractions: int = 2
    # How often the queue-backlog gauge is refreshed.
    backlog_every_s: float = 5.0
    # How often the human-input timer looks for forms past their deadline (human_timer.py): a
    # form times out at most this long after its deadline.
    human_input_timer_s: float = 5.0
