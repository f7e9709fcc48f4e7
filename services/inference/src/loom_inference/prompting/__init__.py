"""Prompt building for local models: chat templates and tool-call constraints."""
