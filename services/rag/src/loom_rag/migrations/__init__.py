"""SQL migrations of the `rag` schema, applied in order at start-up."""
