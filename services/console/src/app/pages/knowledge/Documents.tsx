/**
 * A dataset's documents: upload several files at once with a progress bar each (chunking mode
 * and sizes chosen per upload), the live indexing status of every document (polled while any is
 * still indexing), enable/disable, delete, and the chunk preview of the one picked.
 */
import { useRef, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, upload } from "../../api";
import { can } from "../../rbac";
import type { Schema } from "../../schemas";
import { ConfirmButton, Empty, ErrorMessage, Field, Loading, formatTime } from "../../ui";
import { kbHeaders, useWorkspace } from "../../workspace";
import type { Dataset } from "../KnowledgePage";
import { Chunks } from "./Chunks";
import { describeRule } from "./chunking";

export interface DocumentRow {
  id: string;
  name: string;
  indexing_status: string;
  enabled: boolean;
  word_count: number;
  tokens: number;
  error: string | null;
  created_at: number;
}

interface UploadItem {
  key: string;
  name: string;
  progress: number;
  state: "uploading" | "done" | "failed";
  error?: string;
}

const FINAL = new Set(["completed", "error", "paused", "stopped"]);

export function Documents({ dataset }: { dataset: Dataset }) {
  const { workspaceId, role } = useWorkspace();
  const headers = kbHeaders(workspaceId);
  const writable = can(role, "datasets.write");
  const queryClient = useQueryClient();
  const path = `/v1/datasets/${dataset.id}`;
  const docs = useQuery({
    queryKey: ["documents", dataset.id],
    queryFn: () => api<{ data: DocumentRow[]; total: number }>("GET", `${path}/documents?limit=100`, undefined, { headers }),
    // Live indexing status: poll while any document is still on its way.
    refetchInterval: (q) => ((q.state.data?.data ?? []).some((d) => !FINAL.has(d.indexing_status)) ? 1000 : false),
  });
  const [uploads, setUploads] = useState<UploadItem[]>([]);
  // "dataset": no rule sent, so the dataset's own chunking (its Settings tab) applies.
  const [mode, setMode] = useState<"dataset" | "automatic" | "custom">("dataset");
  const [maxTokens, setMaxTokens] = useState(500);
  const [overlap, setOverlap] = useState(50);
  const [selected, setSelected] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const refresh = () =>
    Promise.all([
      queryClient.invalidateQueries({ queryKey: ["documents", dataset.id] }),
      queryClient.invalidateQueries({ queryKey: ["dataset", workspaceId, dataset.id] }),
      queryClient.invalidateQueries({ queryKey: ["datasets", workspaceId] }),
    ]);

  const patchUpload = (key: string, patch: Partial<UploadItem>) =>
    setUploads((items) => items.map((u) => (u.key === key ? { ...u, ...patch } : u)));

  const uploadFiles = async (files: FileList | null) => {
    if (!files?.length) return;
    const rule =
      mode === "custom"
        ? { mode: "custom", rules: { segmentation: { separator: "\n\n", max_tokens: maxTokens, chunk_overlap: overlap }, pre_processing_rules: [{ id: "remove_extra_spaces", enabled: true }] } }
        : mode === "automatic"
          ? { mode: "automatic" }
          : undefined;
    const batch = Array.from(files).map((file, i) => ({ file, key: `${Date.now()}-${i}-${file.name}` }));
    setUploads((items) => [...batch.map(({ file, key }) => ({ key, name: file.name, progress: 0, state: "uploading" as const })), ...items]);
    await Promise.all(
      batch.map(async ({ file, key }) => {
        const form = new FormData();
        form.append("file", file, file.name);
        form.append("data", JSON.stringify({ indexing_technique: "high_quality", ...(rule ? { process_rule: rule } : {}) }));
        try {
          await upload(`${path}/document/create-by-file`, form, (p) => patchUpload(key, { progress: p }), headers);
          patchUpload(key, { state: "done", progress: 1 });
        } catch (err) {
          patchUpload(key, { state: "failed", error: (err as Error).message });
        }
        void refresh();
      }),
    );
    if (fileInput.current) fileInput.current.value = "";
  };

  const toggle = useMutation({
    mutationFn: (doc: DocumentRow) =>
      api("PATCH", `${path}/documents/status/${doc.enabled ? "disable" : "enable"}`, { document_ids: [doc.id] } satisfies Schema<"DocumentIds">, { headers }),
    onSettled: refresh,
  });
  const remove = useMutation({
    mutationFn: (doc: DocumentRow) => api("DELETE", `${path}/documents/${doc.id}`, undefined, { headers }),
    onSettled: refresh,
  });

  return (
    <div className="stack">
      {writable && (
        <section className="subcard" aria-labelledby="upload-title">
          <h2 id="upload-title">Upload files</h2>
          <div className="row">
            <Field label="Chunking">
              {(id) => (
                <select id={id} value={mode} onChange={(e) => setMode(e.target.value as "dataset" | "automatic" | "custom")}>
                  <option value="dataset">The dataset's ({describeRule(dataset.process_rule)})</option>
                  <option value="automatic">Automatic</option>
                  <option value="custom">Custom sizes</option>
                </select>
              )}
            </Field>
            {mode === "custom" && (
              <>
                <Field label="Max tokens per chunk">
                  {(id) => <input id={id} type="number" min={50} max={4000} value={maxTokens} onChange={(e) => setMaxTokens(Number(e.target.value))} />}
                </Field>
                <Field label="Overlap (tokens)">
                  {(id) => <input id={id} type="number" min={0} max={1000} value={overlap} onChange={(e) => setOverlap(Number(e.target.value))} />}
                </Field>
              </>
            )}
          </div>
          <Field label="Files" hint="Text, Markdown, PDF, DOCX, HTML, CSV…; several at once.">
            {(id) => <input id={id} ref={fileInput} type="file" multiple onChange={(e) => void uploadFiles(e.target.files)} />}
          </Field>
          {uploads.length > 0 && (
            <ul className="uploads" aria-label="Uploads">
              {uploads.map((u) => (
                <li key={u.key} data-state={u.state}>
                  <span className="upload-name">{u.name}</span>
                  <progress max={1} value={u.progress} aria-label={`Upload of ${u.name}`} />
                  <span className="small">{u.state === "failed" ? u.error : u.state === "done" ? "uploaded" : `${Math.round(u.progress * 100)}%`}</span>
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
      {docs.isLoading ? (
        <Loading label="Loading documents…" />
      ) : docs.error ? (
        <ErrorMessage error={docs.error} />
      ) : !docs.data?.data.length ? (
        <Empty>No documents yet.</Empty>
      ) : (
        <table aria-label="Documents" className="selectable">
          <thead>
            <tr>
              <th>Name</th>
              <th>Status</th>
              <th>Words</th>
              <th>Added</th>
              <th>Enabled</th>
              {writable && <th aria-label="Actions" />}
            </tr>
          </thead>
          <tbody>
            {docs.data.data.map((d) => (
              <tr key={d.id} aria-selected={selected === d.id} data-document={d.name}>
                <td>
                  <button type="button" className="link" onClick={() => setSelected(d.id)}>{d.name}</button>
                </td>
                <td>
                  <span className={`status status-${d.indexing_status}`} data-testid="indexing-status">{d.indexing_status}</span>
                  {d.error && <span className="error small"> {d.error}</span>}
                </td>
                <td>{d.word_count}</td>
                <td>{formatTime(d.created_at)}</td>
                <td>
                  <label className="switch">
                    <input
                      type="checkbox"
                      checked={d.enabled}
                      disabled={!writable || toggle.isPending}
                      onChange={() => toggle.mutate(d)}
                      aria-label={`${d.enabled ? "Disable" : "Enable"} ${d.name}`}
                    />
                    {d.enabled ? "on" : "off"}
                  </label>
                </td>
                {writable && (
                  <td>
                    <ConfirmButton question={`Delete ${d.name} and its chunks?`} onConfirm={() => remove.mutate(d)}>Delete</ConfirmButton>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorMessage error={toggle.error ?? remove.error} />
      {selected && <Chunks datasetId={dataset.id} documentId={selected} />}
    </div>
  );
}
