"""Cross-service tests share the real NATS/Postgres fixtures of loom_common.testing."""
