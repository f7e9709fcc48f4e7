"""loom-tools: Tool executor: registry, HTTP/OpenAPI tools behind an SSRF guard, read-only SQL,
sandboxed code; every call validated, limited and audited.
"""

__version__ = "0.1.0"
