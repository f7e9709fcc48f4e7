"""loom-rag: Datasets, document ingestion (a JetStream work queue) and hybrid retrieval over
pgvector.
"""

__version__ = "0.1.0"
