"""The embedded dev stack: NATS and Postgres+pgvector from PyPI wheels, and every Loom
service under supervisord, for `make up` and the test fixtures. Production never uses it:
there `LOOM_NATS_URL` and `LOOM_DATABASE_URL` point at real servers."""
