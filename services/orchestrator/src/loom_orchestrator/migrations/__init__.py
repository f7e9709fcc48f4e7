"""SQL migrations of the `orchestrator` schema, applied in order at start-up."""
