import { describe, expect, it } from "vitest";
import { deleteTarget, groupTools, mcpBody, type Tool } from "./ToolsPage";

const tool = (id: string, kind: string, has_credentials = false): Tool => ({
  id, name: id, kind, description: "", provider: id.includes(".") ? id.split(".")[0] : id, parameters: {},
  has_credentials,
});

describe("tools page", () => {
  it("groups by provider, the workspace's own before the built-ins", () => {
    const groups = groupTools([tool("time.now", "builtin"), tool("calc.add", "mcp", true), tool("calc.sub", "mcp", true),
      tool("crm.query", "sql"), tool("weather", "http")]);
    expect(groups.map((g) => g.provider)).toEqual(["calc", "crm", "weather", "time"]);
    expect(groups[0].tools.map((t) => t.id)).toEqual(["calc.add", "calc.sub"]);
    expect(groups[3].builtin).toBe(true);
  });

  it("sends a token only when one is typed", () => {
    expect(mcpBody({ name: " calc ", url: "https://mcp.example.com/mcp", token: "" }))
      .toEqual({ name: "calc", url: "https://mcp.example.com/mcp" });
    expect(mcpBody({ name: "calc", url: "https://x/mcp", token: "s3cret" }).credentials)
      .toEqual({ type: "bearer", token: "s3cret" });
  });

  it("deletes a provider's tools by prefix, a lone tool by its id", () => {
    const [calc, weather] = groupTools([tool("calc.add", "mcp"), tool("weather", "http")]);
    expect(deleteTarget(calc)).toBe("calc.*");
    expect(deleteTarget(weather)).toBe("weather");
  });
});
