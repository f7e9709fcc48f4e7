"""OpenAPI 3 import: each operation of a spec becomes a tool; calls go through the SSRF guard."""
