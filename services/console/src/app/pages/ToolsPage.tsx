/**
 * A workspace's tools (the gateway's /tools routes): every tool grouped by provider (an MCP
 * server, an OpenAPI import, a SQL connection, the built-ins), adding an MCP server, one test
 * call, and deleting a provider's tools. Editors and up write; every member who sees apps lists.
 * A tool's id is what tool and agent nodes name; credentials are write-only (the list shows
 * only that some are set).
 */
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { can } from "../rbac";
import { ConfirmButton, Empty, ErrorMessage, Field, Loading, MutationForm } from "../ui";
import { useWorkspace } from "../workspace";

export interface Tool {
  id: string;
  name: string;
  kind: string;
  description: string;
  provider: string;
  parameters: Record<string, unknown>;
  has_credentials: boolean;
}

export interface ToolGroup {
  provider: string;
  kind: string;
  builtin: boolean;
  tools: Tool[];
}

/** Tools grouped by provider: the workspace's own first (by name), the built-ins last. */
export function groupTools(tools: Tool[]): ToolGroup[] {
  const groups = new Map<string, ToolGroup>();
  for (const t of tools) {
    const key = `${t.kind === "builtin" ? "1" : "0"}:${t.provider}`;
    const g = groups.get(key) ?? { provider: t.provider, kind: t.kind, builtin: t.kind === "builtin", tools: [] };
    g.tools.push(t);
    groups.set(key, g);
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, g]) => g);
}

export interface McpForm {
  name: string;
  url: string;
  token: string;
}

/** The POST /tools/mcp body: the token only when one is typed (sent once, sealed, never shown). */
export function mcpBody(form: McpForm): Record<string, unknown> {
  const body: Record<string, unknown> = { name: form.name.trim(), url: form.url.trim() };
  if (form.token.trim()) body.credentials = { type: "bearer", token: form.token.trim() };
  return body;
}

/** The DELETE target of a group: every tool under the provider's prefix, or the one tool. */
export function deleteTarget(group: ToolGroup): string {
  return group.tools.length === 1 && group.tools[0].id === group.provider ? group.provider : `${group.provider}.*`;
}

function TestCall({ base, tool }: { base: string; tool: Tool }) {
  const [args, setArgs] = useState("{}");
  const test = useMutation({
    mutationFn: () => api<Record<string, unknown>>("POST", `${base}/tools/${encodeURIComponent(tool.id)}/test`,
      { arguments: JSON.parse(args) as Record<string, unknown> }),
  });
  return (
    <MutationForm mutation={test} label="Test" busyLabel="Calling…">
      <Field label={`Arguments of ${tool.id} (JSON)`}>{(id) => <textarea id={id} rows={3} value={args} onChange={(e) => setArgs(e.target.value)} />}</Field>
      {test.data && <pre aria-label="Test result">{JSON.stringify(test.data, null, 2)}</pre>}
    </MutationForm>
  );
}

export function ToolsPage() {
  const { workspaceId, role } = useWorkspace();
  const base = `/console/api/workspaces/${workspaceId}`;
  const client = useQueryClient();
  const writer = can(role, "apps.write");
  const [form, setForm] = useState<McpForm>({ name: "", url: "", token: "" });
  const [testing, setTesting] = useState<Tool | null>(null);
  const tools = useQuery({ queryKey: ["tools", workspaceId], queryFn: () => api<{ data: Tool[] }>("GET", `${base}/tools`) });
  const refresh = () => client.invalidateQueries({ queryKey: ["tools", workspaceId] });
  const add = useMutation({
    mutationFn: () => api("POST", `${base}/tools/mcp`, mcpBody(form)),
    onSuccess: () => {
      setForm({ name: "", url: "", token: "" });
      void refresh();
    },
  });
  const remove = useMutation({
    mutationFn: (target: string) => api("DELETE", `${base}/tools/${encodeURIComponent(target)}`),
    onSuccess: () => void refresh(),
  });
  const set = (key: keyof McpForm) => (e: React.ChangeEvent<HTMLInputElement>) => setForm({ ...form, [key]: e.target.value });

  return (
    <section aria-labelledby="tools-title" className="stack">
      <header className="page-header">
        <h1 id="tools-title">Tools</h1>
      </header>
      {writer && (
        <details>
          <summary>Add an MCP server</summary>
          <MutationForm mutation={add} label="Add server" busyLabel="Listing its tools…" disabled={!form.name || !form.url}>
            <Field label="Name" hint="its tools are named <name>.<tool>">{(id) => <input id={id} value={form.name} onChange={set("name")} />}</Field>
            <Field label="URL" hint="the server's streamable HTTP endpoint">{(id) => <input id={id} type="url" value={form.url} onChange={set("url")} />}</Field>
            <Field label="Bearer token" hint="optional; stored encrypted, never shown again">{(id) => <input id={id} type="password" autoComplete="off" value={form.token} onChange={set("token")} />}</Field>
          </MutationForm>
        </details>
      )}
      <ErrorMessage error={remove.error} />
      {tools.isLoading ? (
        <Loading />
      ) : tools.error ? (
        <ErrorMessage error={tools.error} />
      ) : !tools.data?.data.length ? (
        <Empty>No tools.</Empty>
      ) : (
        groupTools(tools.data.data).map((g) => (
          <article key={`${g.kind}:${g.provider}`} className="card stack" aria-label={`Provider ${g.provider}`}>
            <header className="row">
              <h2>{g.provider}</h2>
              <span className="muted">{g.builtin ? "built-in" : g.kind}</span>
              {g.tools.some((t) => t.has_credentials) && <span className="muted">credentials set</span>}
              {writer && !g.builtin && (
                <ConfirmButton question={`Delete ${deleteTarget(g)}?`} onConfirm={() => remove.mutate(deleteTarget(g))}>
                  Delete
                </ConfirmButton>
              )}
            </header>
            <ul>
              {g.tools.map((t) => (
                <li key={t.id}>
                  <code>{t.id}</code> {t.description}
                  {writer && (
                    <button type="button" className="ghost" onClick={() => setTesting(testing?.id === t.id ? null : t)}>
                      Test
                    </button>
                  )}
                  {testing?.id === t.id && <TestCall base={base} tool={t} />}
                </li>
              ))}
            </ul>
          </article>
        ))
      )}
    </section>
  );
}
