"""Settings of the rag service (env prefix `LOOM_RAG_`; shared ones keep `LOOM_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from loom_common import bus
from loom_common.blobs import StorageSettings
from loom_common.settings import ServiceSettings
from loom_rag.domain.vector_routes import IndexPolicy


class RagSettings(ServiceSettings, StorageSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_RAG_", extra="ignore",
                                      populate_by_name=True)

    http_port: int = 8082
    grpc_port: int = 50052

    # Raw files: the fields of `StorageSettings`, rag's own store: "local" keeps them under
    # storage_dir (default $LOOM_HOME/rag/files), "s3" under this prefix.
    s3_prefix: str = "rag"

    # Ingestion. A worker marks its message in progress after every batch, so ack_wait bounds
    # how long a crashed worker's document waits for redelivery, not how long a document may take.
    ingest_ack_wait_s: float = bus.RAG_INGEST.ack_wait_s
    # Documents one worker process handles at once: up to parse_concurrency of them parsed and
    # split (each parse a child process under the limits below), the others indexing, their
    # batches packed together (ingest/batching.py): up to embed_pack_chunks chunks of one
    # tenant's documents per Embed call and per write transaction.
    ingest_concurrency: int = 8
    parse_concurrency: int = 2
    embed_batch_size: int = 64             # chunks of one document per batch (its progress step)
    embed_pack_chunks: int = 64            # an Embed call as long as before: the same deadline fits
    embed_timeout_s: float = 60.0
    max_file_bytes: int = 50 * 1024 * 1024
    # Parsing runs in a child process under these limits (ingest/isolated.py).
    parse_memory_mb: int = 1024
    parse_cpu_s: int = 30
    parse_wall_s: float = 60.0
    parse_max_text_chars: int = 5_000_000
    parse_max_unzipped_mb: int = 200

    # Retrieval.
    hnsw_ef_search: int = 64               # candidates HNSW keeps; recall vs latency
    candidates_per_method: int = 40        # rows each method hands to fusion in hybrid search
    backlog_poll_s: float = 5.0            # how often the queue backlog gauge is refreshed
    # A small tenant in a big table (domain/vector_routes.py): a dataset of up to this many rows
    # is searched exactly; past own_index_min_rows, while it holds at most own_index_max_share
    # of its dimension's rows, it gets a partial HNSW index of its own, which the index keeper
    # builds concurrently in the background every index_keeper_poll_s (0: no keeper here).
    vector_exact_max_rows: int = 2_000
    own_index_min_rows: int = 2_000
    own_index_max_share: float = 0.5
    index_keeper_poll_s: float = 30.0

    def index_policy(self) -> IndexPolicy:
        return IndexPolicy(exact_max_rows=self.vector_exact_max_rows, own_index_min_rows=self.own_index_min_rows,
                           own_index_max_share=self.own_index_max_share)

    def storage_root(self) -> Path:
        if self.storage_dir:
            return Path(self.storage_dir)
        return self.home / "rag" / "files"
