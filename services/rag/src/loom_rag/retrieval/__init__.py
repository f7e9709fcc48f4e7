"""Retrieval: vector, full-text and hybrid search, fused and optionally reranked."""
