/** The chunks of one document: preview, edit (re-embedded by rag) and enable/disable each. */
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../../api";
import { can } from "../../rbac";
import { Empty, ErrorMessage, Loading } from "../../ui";
import { kbHeaders, useWorkspace } from "../../workspace";
import type { Schema } from "../../schemas";

interface Segment {
  id: string;
  position: number;
  content: string;
  word_count: number;
  tokens: number;
  enabled: boolean;
  status: string;
}

export function Chunks({ datasetId, documentId }: { datasetId: string; documentId: string }) {
  const { workspaceId, role } = useWorkspace();
  const headers = kbHeaders(workspaceId);
  const writable = can(role, "datasets.write");
  const queryClient = useQueryClient();
  const path = `/v1/datasets/${datasetId}/documents/${documentId}/segments`;
  const segments = useQuery({
    queryKey: ["segments", documentId],
    queryFn: () => api<{ data: Segment[]; total: number }>("GET", `${path}?limit=100`, undefined, { headers }),
  });
  const [editing, setEditing] = useState<{ id: string; content: string } | null>(null);
  const update = useMutation({
    mutationFn: ({ id, segment }: { id: string; segment: { content?: string; enabled?: boolean } }) =>
      api("POST", `${path}/${id}`, { segment } satisfies Schema<"SegmentUpdateBody">, { headers }),
    onSuccess: () => {
      setEditing(null);
      void queryClient.invalidateQueries({ queryKey: ["segments", documentId] });
    },
  });
  return (
    <section aria-labelledby="chunks-title" className="subcard stack">
      <h2 id="chunks-title">Chunks{segments.data ? ` (${segments.data.total})` : ""}</h2>
      {segments.isLoading ? (
        <Loading label="Loading chunks…" />
      ) : segments.error ? (
        <ErrorMessage error={segments.error} />
      ) : !segments.data?.data.length ? (
        <Empty>No chunks yet (the document may still be indexing).</Empty>
      ) : (
        <ol className="chunks" data-testid="chunks">
          {segments.data.data.map((s) => (
            <li key={s.id} className={s.enabled ? "" : "disabled"}>
              <header className="row">
                <span className="muted small">#{s.position} · {s.word_count} words · {s.status}</span>
                {writable && (
                  <>
                    <label className="switch small">
                      <input type="checkbox" checked={s.enabled} onChange={() => update.mutate({ id: s.id, segment: { enabled: !s.enabled } })} aria-label={`Chunk ${s.position} enabled`} />
                      enabled
                    </label>
                    <button type="button" className="ghost" onClick={() => setEditing({ id: s.id, content: s.content })}>Edit</button>
                  </>
                )}
              </header>
              {editing?.id === s.id ? (
                <div className="stack">
                  <label className="sr-only" htmlFor={`chunk-${s.id}`}>Chunk text</label>
                  <textarea id={`chunk-${s.id}`} rows={6} value={editing.content} onChange={(e) => setEditing({ id: s.id, content: e.target.value })} />
                  <div className="row">
                    <button type="button" onClick={() => update.mutate({ id: s.id, segment: { content: editing.content } })} disabled={update.isPending}>Save chunk</button>
                    <button type="button" className="ghost" onClick={() => setEditing(null)}>Cancel</button>
                  </div>
                </div>
              ) : (
                <p className="chunk-text">{s.content}</p>
              )}
            </li>
          ))}
        </ol>
      )}
      <ErrorMessage error={update.error} />
    </section>
  );
}
