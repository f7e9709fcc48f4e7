"""Adapters to other Loom services (the only modules here that speak gRPC as a client)."""
