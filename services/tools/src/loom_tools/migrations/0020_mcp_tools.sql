-- MCP servers' tools (kind 'mcp'): each registered tool of an MCP server is a row, its config
-- naming the server's URL and the server's own name for the tool; credentials sealed as before.
ALTER TABLE tools DROP CONSTRAINT IF EXISTS tools_kind_check;
ALTER TABLE tools ADD CONSTRAINT tools_kind_check CHECK (kind IN ('http', 'openapi', 'sql', 'code', 'mcp'));
