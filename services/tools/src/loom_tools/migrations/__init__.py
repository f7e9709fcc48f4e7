"""SQL migrations of the `tools` schema, applied in order at start-up."""
