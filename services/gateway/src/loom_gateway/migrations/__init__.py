"""SQL migrations of the `gateway` schema, applied in order at start-up."""
