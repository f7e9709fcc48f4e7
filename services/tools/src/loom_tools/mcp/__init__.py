"""MCP servers as tools: a tenant's streamable-HTTP MCP server, listed once and called per tool.

    transport.py   an httpx2 transport that vets every request with the SSRF guard, connects to
                   the vetted address and caps what a response may bring back
    session.py     one short MCP session (the official `mcp` SDK client) to list or call tools
    runner.py      the `mcp` tool kind's runner
"""
