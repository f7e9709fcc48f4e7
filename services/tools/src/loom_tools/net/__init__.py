"""Outbound HTTP for tools: address vetting (SSRF guard) and a client that uses it."""
