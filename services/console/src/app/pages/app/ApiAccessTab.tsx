/**
 * An app's API access: its service API base URL, keys (created and shown once, revoked), and
 * copy-paste curl examples for the app's mode filled with the app's own inputs (its start node's
 * variables, read from the draft).
 */
import { useQuery } from "@tanstack/react-query";
import { api } from "../../api";
import { ApiKeys } from "../../apiKeys";
import { CopyButton, ErrorMessage } from "../../ui";
import { useWorkspace } from "../../workspace";
import type { AppSummary } from "../AppsPage";

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
  const draft = useQuery({
    queryKey: ["draft", app.id],
    queryFn: () => api<unknown>("GET", `/console/api/workspaces/${workspaceId}/apps/${app.id}/draft`),
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
        <ApiKeys
          path={`/console/api/workspaces/${workspaceId}/apps/${app.id}/api-keys`}
          queryKey={["app-keys", app.id]}
          nameLabel="Key name"
          createLabel="Create key"
          emptyText="No keys yet."
          tokenTestId="new-key-token"
          noticeTestId="new-key"
        />
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
