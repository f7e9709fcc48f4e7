/**
 * Requests, errors, tokens, TTFT and latency percentiles and a per-day chart, from the gateway's
 * statistics route (GET /workspaces/{ws}/statistics?app_id=&days=). Without `appId` it is the
 * workspace's monitoring.
 */
import { useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { api } from "../../api";
import { Empty, ErrorMessage, Loading } from "../../ui";
import { useWorkspace } from "../../workspace";

interface Percentiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

interface Statistics {
  requests: number;
  errors: number;
  tokens: number;
  ttft_ms: Percentiles;
  latency_ms: Percentiles;
  daily: { date: string; requests: number; errors: number; tokens: number }[];
}

const ms = (v: number | null | undefined) => (v === null || v === undefined ? "–" : `${Math.round(v)} ms`);

export function MonitoringTab({ appId }: { appId?: string }) {
  const { workspaceId } = useWorkspace();
  const [days, setDays] = useState(7);
  const stats = useQuery({
    queryKey: ["statistics", workspaceId, appId ?? "", days],
    queryFn: () =>
      api<Statistics>(
        "GET",
        `/console/api/workspaces/${workspaceId}/statistics?days=${days}${appId ? `&app_id=${encodeURIComponent(appId)}` : ""}`,
      ),
  });
  const max = Math.max(1, ...(stats.data?.daily ?? []).map((d) => d.requests));
  return (
    <div className="stack">
      <div className="row filters">
        <label htmlFor="stat-days">Period</label>
        <select id="stat-days" value={days} onChange={(e) => setDays(Number(e.target.value))}>
          <option value={1}>Today</option>
          <option value={7}>Last 7 days</option>
          <option value={30}>Last 30 days</option>
          <option value={90}>Last 90 days</option>
        </select>
      </div>
      {stats.isLoading ? (
        <Loading label="Loading statistics…" />
      ) : stats.error ? (
        <ErrorMessage error={stats.error} />
      ) : !stats.data ? null : (
        <>
          <dl className="metrics" data-testid="metrics">
            <div><dt>Requests</dt><dd>{stats.data.requests}</dd></div>
            <div><dt>Errors</dt><dd>{stats.data.errors}</dd></div>
            <div><dt>Tokens</dt><dd>{stats.data.tokens}</dd></div>
            <div><dt>TTFT p50 / p95 / p99</dt><dd>{ms(stats.data.ttft_ms.p50)} / {ms(stats.data.ttft_ms.p95)} / {ms(stats.data.ttft_ms.p99)}</dd></div>
            <div><dt>Latency p50 / p95 / p99</dt><dd>{ms(stats.data.latency_ms.p50)} / {ms(stats.data.latency_ms.p95)} / {ms(stats.data.latency_ms.p99)}</dd></div>
          </dl>
          {stats.data.requests === 0 ? (
            <Empty>No requests in this period.</Empty>
          ) : (
            <table className="daily" aria-label="Requests per day">
              <thead>
                <tr><th>Day</th><th>Requests</th><th>Errors</th><th>Tokens</th><th aria-hidden="true" /></tr>
              </thead>
              <tbody>
                {stats.data.daily.map((d) => (
                  <tr key={d.date}>
                    <td>{d.date}</td>
                    <td>{d.requests}</td>
                    <td>{d.errors}</td>
                    <td>{d.tokens}</td>
                    <td aria-hidden="true" className="bar-cell">
                      <span className="bar" style={{ width: `${(100 * d.requests) / max}%` }} />
                      <span className="bar error-bar" style={{ width: `${(100 * d.errors) / max}%` }} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </div>
  );
}
