"""RAG domain: plain data, errors and protocols; no transport, no SQL."""
