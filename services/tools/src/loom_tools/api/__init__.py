"""Transports of the tools service."""
