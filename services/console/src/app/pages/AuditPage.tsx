/**
 * The audit log (owners and admins): filter by action, actor, target and time, newest first,
 * paged with `before_id`.
 */
import { useState, type FormEvent } from "react";
import { useInfiniteQuery } from "@tanstack/react-query";
import { api } from "../api";
import { can } from "../rbac";
import { Empty, ErrorMessage, Field, Loading, formatTime } from "../ui";
import { useWorkspace } from "../workspace";
import { AuditSettings } from "../settings/AuditSettings";

interface AuditEntry {
  id: number;
  action: string;
  actor_type?: string;
  actor_id?: string | null;
  target_type?: string | null;
  target_id?: string | null;
  ip?: string | null;
  created_at: number | string;
  detail?: unknown;
}

interface Filters {
  action: string;
  actor_id: string;
  target_id: string;
  since: string;
  until: string;
}

const EMPTY: Filters = { action: "", actor_id: "", target_id: "", since: "", until: "" };

function query(filters: Filters, beforeId?: number): string {
  const params = new URLSearchParams({ limit: "50" });
  for (const [k, v] of Object.entries(filters)) {
    if (!v) continue;
    params.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
  }
  if (beforeId !== undefined) params.set("before_id", String(beforeId));
  return params.toString();
}

export function AuditPage() {
  const { workspaceId, role } = useWorkspace();
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const log = useInfiniteQuery({
    queryKey: ["audit", workspaceId, filters],
    initialPageParam: undefined as number | undefined,
    queryFn: ({ pageParam }) =>
      api<{ data: AuditEntry[]; has_more: boolean }>("GET", `/console/api/workspaces/${workspaceId}/audit-logs?${query(filters, pageParam)}`),
    getNextPageParam: (last) => (last.has_more && last.data.length ? last.data[last.data.length - 1].id : undefined),
  });
  const rows = log.data?.pages.flatMap((p) => p.data) ?? [];
  const set = (key: keyof Filters) => (e: React.ChangeEvent<HTMLInputElement>) => setDraft({ ...draft, [key]: e.target.value });

  return (
    <section aria-labelledby="audit-title" className="stack">
      <header className="page-header">
        <h1 id="audit-title">Audit log</h1>
      </header>
      <form
        className="row filters"
        aria-label="Audit log filters"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          setFilters(draft);
        }}
      >
        <Field label="Action">{(id) => <input id={id} placeholder="e.g. apps.publish" value={draft.action} onChange={set("action")} />}</Field>
        <Field label="Actor ID">{(id) => <input id={id} value={draft.actor_id} onChange={set("actor_id")} />}</Field>
        <Field label="Target ID">{(id) => <input id={id} value={draft.target_id} onChange={set("target_id")} />}</Field>
        <Field label="Since">{(id) => <input id={id} type="datetime-local" value={draft.since} onChange={set("since")} />}</Field>
        <Field label="Until">{(id) => <input id={id} type="datetime-local" value={draft.until} onChange={set("until")} />}</Field>
        <button type="submit">Filter</button>
        <button type="button" className="ghost" onClick={() => { setDraft(EMPTY); setFilters(EMPTY); }}>Clear</button>
      </form>
      {log.isLoading ? (
        <Loading label="Loading the audit log…" />
      ) : log.error ? (
        <ErrorMessage error={log.error} />
      ) : rows.length === 0 ? (
        <Empty>No entries match.</Empty>
      ) : (
        <table aria-label="Audit entries" data-testid="audit-table">
          <thead>
            <tr><th>When</th><th>Action</th><th>Actor</th><th>Target</th><th>IP</th></tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id}>
                <td>{formatTime(r.created_at)}</td>
                <td><code>{r.action}</code></td>
                <td>{r.actor_type ? `${r.actor_type} ` : ""}<span className="muted small">{r.actor_id ?? "–"}</span></td>
                <td>{r.target_type ? `${r.target_type} ` : ""}<span className="muted small">{r.target_id ?? "–"}</span></td>
                <td>{r.ip ?? "–"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {log.hasNextPage && (
        <button type="button" className="secondary" onClick={() => void log.fetchNextPage()} disabled={log.isFetchingNextPage}>
          {log.isFetchingNextPage ? "Loading…" : "Older entries"}
        </button>
      )}
      <section className="subcard" aria-labelledby="retention-title">
        <h2 id="retention-title">Retention</h2>
        <AuditSettings workspaceId={workspaceId} canManage={can(role, "audit.manage")} />
      </section>
    </section>
  );
}
