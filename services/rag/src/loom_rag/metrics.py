"""Prometheus metrics of the RAG service (served on /metrics by the runtime's admin router).

    loom_rag_documents_ingested_total{status}   documents finished, completed or error
    loom_rag_chunks_indexed_total               segments embedded and written (rate() = chunks/s)
    loom_rag_ingest_chunks_per_second           throughput of the last finished document
    loom_rag_ingest_queue_backlog               messages waiting on the rag-ingest consumer
    loom_rag_retrieval_seconds{method}          Retrieve latency, end to end inside the service
    loom_rag_vector_routes_total{route}         datasets searched by route (exact, own_index, shared)
    loom_rag_own_vector_indexes                 valid per-dataset HNSW indexes (IndexKeeper)
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DOCUMENTS_INGESTED = Counter("loom_rag_documents_ingested", "Documents whose ingestion ended", ["status"])
CHUNKS_INDEXED = Counter("loom_rag_chunks_indexed", "Segments embedded and written")
CHUNKS_PER_SECOND = Gauge("loom_rag_ingest_chunks_per_second", "Chunks per second of the last finished document")
QUEUE_BACKLOG = Gauge("loom_rag_ingest_queue_backlog", "Ingest messages pending or unacknowledged")
RETRIEVAL_SECONDS = Histogram("loom_rag_retrieval_seconds", "Retrieve latency", ["method"],
                              buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
VECTOR_ROUTES = Counter("loom_rag_vector_routes", "Datasets searched by vector route", ["route"])
OWN_INDEXES = Gauge("loom_rag_own_vector_indexes", "Valid per-dataset HNSW indexes")
