"""Transports of the RAG service."""
