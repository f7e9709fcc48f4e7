"""Loom's shared ground: every service imports this package and nothing of another service."""

__version__ = "0.1.0"
