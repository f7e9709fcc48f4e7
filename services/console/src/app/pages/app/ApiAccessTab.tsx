/**
 * An app's API access: its service API base URL, keys (created and shown once, revoked), and
 * copy-paste curl examples for the app's mode filled with the app's own inputs (its start node's
 * variables, read from the draft).
 */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../../api";
import { CopyButton, Empty, ErrorMessage, Field, Loading, formatTime } from "../../ui";
import { useWorkspace } from "../../workspace";
import type { AppSummary } from "../AppsPage";
import type { Schema } from "../../schemas";

interface ApiKey {
  id: string;
  token: string;
  name: string;
  created_at: number;
  last_used_at: number | null;
}

export interface StartVariable {
  variable: string;
  label?: string;
  type?: string;
  required?: boolean;
  options?: string[];
  default?: unknown;
}

/** The start node's variables of a DSL document (the app's form). */
export function startVariables(doc: unknown): StartVariable[] {
  const nodes = (doc as { workflow?: { graph?: { nodes?: { parent_id?: string; data?: { type?: string; variables?: StartVariable[] } }[] } } })
    ?.workflow?.graph?.nodes ?? [];
  const start = nodes.find((n) => n.data?.type === "start" && !n.parent_id);
  return start?.data?.variables ?? [];
}

function sampleValue(v: StartVariable): unknown {
  if (v.default !== undefined && v.default !== "" && v.default !== null) return v.default;
  if (v.type === "number") return 1;
  if (v.type === "select") return v.options?.[0] ?? "";
  if (v.type === "checkbox") return true;
  return `<${v.label || v.variable}>`;
}

export function curlExample(mode: string, origin: string, vars: StartVariable[], key = "$LOOM_APP_KEY"): string {
  const inputs = Object.fromEntries(vars.filter((v) => !String(v.type).includes("file")).map((v) => [v.variable, sampleValue(v)]));
  const chat = ["chat", "chatflow", "agent"].includes(mode);
  const path = chat ? "/v1/chat-messages" : mode === "completion" ? "/v1/completion-messages" : "/v1/workflows/run";
  const body: Record<string, unknown> = { inputs, response_mode: "streaming", user: "user-123" };
  if (chat) Object.assign(body, { query: "Hello!", conversation_id: "" });
  const json = JSON.stringify(body, null, 2).replace(/'/g, "'\\''");
  return `curl -N -X POST '${origin}${path}' \\\n  -H 'Authorization: Bearer ${key}' \\\n  -H 'Content-Type: application/json' \\\n  -d '${json}'`;
}

export function ApiAccessTab({ app }: { app: AppSummary }) {
  const { workspaceId } = useWorkspace();
  const keysPath = `/console/api/workspaces/${workspaceId}/apps/${app.id}/api-keys`;
  const queryClient = useQueryClient();
  const keys = useQuery({ queryKey: ["app-keys", app.id], queryFn: () => api<{ data: ApiKey[] }>("GET", keysPath) });
  const draft = useQuery({
    queryKey: ["draft", app.id],
    queryFn: () => api<unknown>("GET", `/console/api/workspaces/${workspaceId}/apps/${app.id}/draft`),
  });
  const [name, setName] = useState("");
  const [created, setCreated] = useState<ApiKey | null>(null);
  const create = useMutation({
    mutationFn: () => api<ApiKey>("POST", keysPath, { name } satisfies Schema<"KeyBody">),
    onSuccess: (key) => {
      setCreated(key);
      setName("");
      void queryClient.invalidateQueries({ queryKey: ["app-keys", app.id] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => api("DELETE", `${keysPath}/${id}`),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["app-keys", app.id] }),
  });
  const origin = window.location.origin;
  const vars = startVariables((draft.data as { dsl?: unknown } | undefined)?.dsl ?? draft.data);

  return (
    <div className="stack">
      <section className="subcard" aria-labelledby="endpoint-title">
        <h2 id="endpoint-title">Endpoint</h2>
        <p>
          Service API base URL: <code data-testid="api-base">{origin}/v1</code> <CopyButton text={`${origin}/v1`} />
        </p>
        {!app.published_version && <p className="warning">This app is not published yet: the API answers only after a publish.</p>}
      </section>

      <section className="subcard" aria-labelledby="keys-title">
        <h2 id="keys-title">API keys</h2>
        {created && (
          <div className="notice" role="status" data-testid="new-key">
            <p>
              <strong>Copy this key now: it will not be shown again.</strong>
            </p>
            <p>
              <code data-testid="new-key-token">{created.token}</code> <CopyButton text={created.token} />
            </p>
            <button type="button" className="ghost" onClick={() => setCreated(null)}>
              I have copied it
            </button>
          </div>
        )}
        {keys.isLoading ? (
          <Loading />
        ) : keys.error ? (
          <ErrorMessage error={keys.error} />
        ) : keys.data?.data.length ? (
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Key</th>
                <th>Created</th>
                <th>Last used</th>
                <th aria-label="Actions" />
              </tr>
            </thead>
            <tbody>
              {keys.data.data.map((k) => (
                <tr key={k.id}>
                  <td>{k.name || "–"}</td>
                  <td><code>{k.token}</code></td>
                  <td>{formatTime(k.created_at)}</td>
                  <td>{formatTime(k.last_used_at)}</td>
                  <td>
                    <button
                      type="button"
                      className="ghost danger"
                      onClick={() => {
                        if (confirm("Revoke this key? Clients using it stop working at once.")) revoke.mutate(k.id);
                      }}
                    >
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Empty>No keys yet.</Empty>
        )}
        <ErrorMessage error={revoke.error} />
        <form
          className="row"
          onSubmit={(e: FormEvent) => {
            e.preventDefault();
            create.mutate();
          }}
        >
          <Field label="Key name">{(id) => <input id={id} maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />}</Field>
          <button type="submit" disabled={create.isPending}>{create.isPending ? "Creating…" : "Create key"}</button>
        </form>
        <ErrorMessage error={create.error} />
      </section>

      <section className="subcard" aria-labelledby="curl-title">
        <h2 id="curl-title">Example request</h2>
        {draft.error ? <ErrorMessage error={draft.error} /> : null}
        <pre className="code" data-testid="curl-example">{curlExample(app.mode, origin, vars)}</pre>
        <CopyButton text={curlExample(app.mode, origin, vars)} label="Copy curl" />
        {vars.length > 0 && (
          <p className="muted small">
            Inputs: {vars.map((v) => `${v.variable}${v.required === false ? "" : " (required)"}`).join(", ")}
          </p>
        )}
      </section>
    </div>
  );
}
