"""The read-only SQL tool: a statement guard, PostgreSQL and SQLite drivers, introspection."""
