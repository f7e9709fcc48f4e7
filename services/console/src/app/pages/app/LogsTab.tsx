/**
 * An app's logs: for chat, chatflow and agent apps its conversations with their messages and
 * feedback (ConversationsLog.tsx), and for every app its runs (newest first, filtered by status
 * and origin) and, for the one picked, its per-node trace read back from the run's stored events
 * (GET …/runs/{id}/events), with the form of a run paused on a human-input node to answer.
 */
import { useMemo, useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { HumanInputForm } from "../../../editor/run/HumanInputForm";
import { openForms } from "../../../editor/run/humanInput";
import { api } from "../../api";
import { can } from "../../rbac";
import { Empty, ErrorMessage, Loading, formatTime } from "../../ui";
import { useWorkspace } from "../../workspace";
import type { AppSummary } from "../AppsPage";
import { ConversationsLog } from "./ConversationsLog";

interface Run {
  id: string;
  status: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
  error: string | null;
  total_steps: number;
  total_tokens: number;
  created_at: number;
  elapsed_time: number | null;
  invoke_from: string;
  debug: boolean;
}

interface TraceEvent {
  event: string;
  data?: {
    node_id?: string;
    node_type?: string;
    title?: string;
    status?: string;
    elapsed_time?: number;
    error?: string | null;
    inputs?: unknown;
    outputs?: unknown;
    execution_metadata?: { total_tokens?: number };
  };
  answer?: string;
  thought?: string;
  tool?: string;
  observation?: string;
  message?: string;
}

const CONVERSATIONAL = new Set(["chat", "chatflow", "agent"]);

export function LogsTab({ app }: { app: AppSummary }) {
  const conversational = CONVERSATIONAL.has(app.mode);
  const [view, setView] = useState<"conversations" | "runs">(conversational ? "conversations" : "runs");
  return (
    <div className="stack">
      {conversational && (
        <div className="row" role="group" aria-label="Logs view">
          <button type="button" className={view === "conversations" ? "" : "secondary"} aria-pressed={view === "conversations"}
            onClick={() => setView("conversations")}>Conversations</button>
          <button type="button" className={view === "runs" ? "" : "secondary"} aria-pressed={view === "runs"}
            onClick={() => setView("runs")}>Runs</button>
        </div>
      )}
      {view === "conversations" ? <ConversationsLog appId={app.id} /> : <RunsLog app={app} />}
    </div>
  );
}

function RunsLog({ app }: { app: AppSummary }) {
  const { workspaceId } = useWorkspace();
  const [status, setStatus] = useState("");
  const [origin, setOrigin] = useState("");
  const [selected, setSelected] = useState<string | null>(null);
  const runs = useQuery({
    queryKey: ["runs", app.id],
    queryFn: () => api<{ data: Run[] }>("GET", `/console/api/workspaces/${workspaceId}/apps/${app.id}/runs?limit=100`),
    refetchInterval: 5000,
  });
  const shown = useMemo(
    () =>
      (runs.data?.data ?? []).filter(
        (r) => (!status || r.status === status) && (!origin || (origin === "debug" ? r.debug : !r.debug)),
      ),
    [runs.data, status, origin],
  );

  return (
    <div className="split">
      <section aria-labelledby="runs-title" className="stack">
        <h2 id="runs-title">Runs</h2>
        <div className="row filters">
          <label className="sr-only" htmlFor="run-status">Status</label>
          <select id="run-status" value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">Any status</option>
            <option value="succeeded">Succeeded</option>
            <option value="failed">Failed</option>
            <option value="running">Running</option>
            <option value="paused">Paused</option>
            <option value="stopped">Stopped</option>
          </select>
          <label className="sr-only" htmlFor="run-origin">Origin</label>
          <select id="run-origin" value={origin} onChange={(e) => setOrigin(e.target.value)}>
            <option value="">API and debugger</option>
            <option value="api">Service API only</option>
            <option value="debug">Debugger only</option>
          </select>
        </div>
        {runs.isLoading ? (
          <Loading label="Loading runs…" />
        ) : runs.error ? (
          <ErrorMessage error={runs.error} />
        ) : shown.length === 0 ? (
          <Empty>No runs yet.</Empty>
        ) : (
          <table className="selectable">
            <thead>
              <tr>
                <th>Started</th>
                <th>Status</th>
                <th>Time</th>
                <th>Tokens</th>
                <th>From</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((r) => (
                <tr key={r.id} aria-selected={selected === r.id}>
                  <td>
                    <button type="button" className="link" onClick={() => setSelected(r.id)}>
                      {formatTime(r.created_at)}
                    </button>
                  </td>
                  <td><span className={`status status-${r.status}`}>{r.status}</span></td>
                  <td>{r.elapsed_time !== null ? `${r.elapsed_time.toFixed(2)} s` : "–"}</td>
                  <td>{r.total_tokens}</td>
                  <td>{r.debug ? "debugger" : "API"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section aria-labelledby="trace-title" className="stack">
        <h2 id="trace-title">Trace</h2>
        {selected ? <RunTrace appId={app.id} runId={selected} /> : <Empty>Pick a run to see each node's trace.</Empty>}
      </section>
    </div>
  );
}

export function RunTrace({ appId, runId }: { appId: string; runId: string }) {
  const { workspaceId, role } = useWorkspace();
  const trace = useQuery({
    queryKey: ["run-events", runId],
    queryFn: () =>
      api<{ data: TraceEvent[]; status: string; truncated?: boolean }>(
        "GET",
        `/console/api/workspaces/${workspaceId}/apps/${appId}/runs/${runId}/events`,
      ),
  });
  if (trace.isLoading) return <Loading label="Loading the trace…" />;
  if (trace.error) return <ErrorMessage error={trace.error} />;
  const events = trace.data?.data ?? [];
  const nodes = events.filter((e) => e.event === "node_finished");
  const started = events.filter((e) => e.event === "node_started");
  const running = started.filter((s) => !nodes.some((n) => n.data?.node_id === s.data?.node_id));
  const answer = events.filter((e) => e.event === "message" || e.event === "agent_message").map((e) => e.answer ?? "").join("");
  const thoughts = events.filter((e) => e.event === "agent_thought");
  const failure = events.find((e) => e.event === "error");
  const forms = trace.data?.status === "paused" ? openForms(events as never[]) : [];
  return (
    <div className="stack" data-testid="run-trace">
      <p>
        Status: <span className={`status status-${trace.data?.status}`}>{trace.data?.status}</span>
        {trace.data?.truncated && <span className="muted"> (trace truncated)</span>}
      </p>
      {nodes.length === 0 && running.length === 0 && <Empty>This run recorded no node events.</Empty>}
      {forms.map((f) => (
        <HumanInputForm key={f.form_id} form={f} base={`/console/api/workspaces/${workspaceId}/apps/${appId}`}
          runId={runId} canAnswer={can(role, "apps.write")} onAnswered={() => void trace.refetch()} />
      ))}
      <ol className="trace">
        {nodes.map((n, i) => (
          <li key={`${n.data?.node_id}-${i}`} className={`trace-node status-${n.data?.status}`}>
            <details>
              <summary>
                <strong>{n.data?.title || n.data?.node_id}</strong> <span className="muted">{n.data?.node_type}</span> ·{" "}
                <span className={`status status-${n.data?.status}`}>{n.data?.status}</span> ·{" "}
                {n.data?.elapsed_time !== undefined ? `${n.data.elapsed_time.toFixed(3)} s` : "–"}
                {n.data?.execution_metadata?.total_tokens ? ` · ${n.data.execution_metadata.total_tokens} tokens` : ""}
              </summary>
              {n.data?.error && <div className="error">{n.data.error}</div>}
              <h4>Inputs</h4>
              <pre className="code">{JSON.stringify(n.data?.inputs ?? {}, null, 2)}</pre>
              <h4>Outputs</h4>
              <pre className="code">{JSON.stringify(n.data?.outputs ?? {}, null, 2)}</pre>
            </details>
          </li>
        ))}
        {running.map((n, i) => (
          <li key={`running-${i}`} className="trace-node status-running">
            <strong>{n.data?.title || n.data?.node_id}</strong> <span className="muted">running…</span>
          </li>
        ))}
      </ol>
      {thoughts.length > 0 && (
        <>
          <h3>Agent rounds</h3>
          <ol className="trace">
            {thoughts.map((t, i) => (
              <li key={i}>
                {t.thought && <p>Thought: {t.thought}</p>}
                {t.tool && <p>Tool: <code>{t.tool}</code></p>}
                {t.observation && <p>Observation: {t.observation}</p>}
              </li>
            ))}
          </ol>
        </>
      )}
      {answer && (
        <>
          <h3>Answer</h3>
          <p className="answer">{answer}</p>
        </>
      )}
      {failure && <div className="error">{failure.message}</div>}
    </div>
  );
}
