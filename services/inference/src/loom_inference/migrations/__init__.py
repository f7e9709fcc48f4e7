"""SQL migrations of the `inference` schema, applied in order at start-up."""
