/**
 * Knowledge: the workspace's datasets (the Dify knowledge API, /v1/datasets, called with the
 * console token and X-Workspace-Id) and creating one with its retrieval method.
 */
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate } from "react-router-dom";
import { api } from "../api";
import { can } from "../rbac";
import { Empty, ErrorMessage, Field, Loading, Modal, MutationForm, formatTime } from "../ui";
import { kbHeaders, useWorkspace } from "../workspace";
import { DatasetKeys } from "./knowledge/DatasetKeys";
import type { Schema } from "../schemas";
import type { ProcessRule } from "./knowledge/chunking";

export interface Dataset {
  id: string;
  name: string;
  description: string | null;
  document_count: number;
  word_count: number;
  embedding_model: string;
  created_at: number;
  retrieval_model_dict: { search_method: string; top_k: number };
  process_rule?: ProcessRule;
}

export const SEARCH_METHODS = [
  { id: "semantic_search", label: "Vector (semantic)" },
  { id: "full_text_search", label: "Full text" },
  { id: "hybrid_search", label: "Hybrid" },
];

/** The select of a retrieval method (dataset creation and settings, retrieval testing). */
export function SearchMethodSelect({ id, value, onChange }: { id: string; value: string; onChange: (method: string) => void }) {
  return (
    <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
      {SEARCH_METHODS.map((m) => <option key={m.id} value={m.id}>{m.label}</option>)}
    </select>
  );
}

export function KnowledgePage() {
  const { workspaceId, role, base } = useWorkspace();
  const headers = kbHeaders(workspaceId);
  const datasets = useQuery({
    queryKey: ["datasets", workspaceId],
    queryFn: () => api<{ data: Dataset[] }>("GET", "/v1/datasets?limit=100", undefined, { headers }),
  });
  const [open, setOpen] = useState(false);
  const writable = can(role, "datasets.write");
  return (
    <section aria-labelledby="kb-title" className="stack">
      <header className="page-header">
        <h1 id="kb-title">Knowledge</h1>
        {writable && (
          <button type="button" onClick={() => setOpen(true)}>
            Create dataset
          </button>
        )}
      </header>
      {datasets.isLoading ? (
        <Loading label="Loading datasets…" />
      ) : datasets.error ? (
        <ErrorMessage error={datasets.error} />
      ) : !datasets.data?.data.length ? (
        <Empty>No datasets yet{writable ? ": create one, then upload files to it." : "."}</Empty>
      ) : (
        <ul className="cards" aria-label="Datasets">
          {datasets.data.data.map((d) => (
            <li key={d.id} className="app-card">
              <Link to={`${base}/knowledge/${d.id}`} className="app-name">{d.name}</Link>
              <p className="muted clamp">{d.description || "No description."}</p>
              <p className="muted small">
                {d.document_count} documents · {d.word_count} words · {SEARCH_METHODS.find((m) => m.id === d.retrieval_model_dict?.search_method)?.label ?? "vector"} ·
                created {formatTime(d.created_at)}
              </p>
            </li>
          ))}
        </ul>
      )}
      {can(role, "dataset_keys.manage") && <DatasetKeys />}
      <Modal title="Create a dataset" open={open} onClose={() => setOpen(false)}>
        <CreateDataset onDone={() => setOpen(false)} />
      </Modal>
    </section>
  );
}

function CreateDataset({ onDone }: { onDone: () => void }) {
  const { workspaceId, base } = useWorkspace();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [method, setMethod] = useState("hybrid_search");
  const create = useMutation({
    mutationFn: () =>
      api<Dataset>("POST", "/v1/datasets", { name, description, indexing_technique: "high_quality", retrieval_model: { search_method: method } } satisfies Schema<"DatasetCreate">, { headers: kbHeaders(workspaceId) }),
    onSuccess: (d) => {
      void queryClient.invalidateQueries({ queryKey: ["datasets", workspaceId] });
      onDone();
      navigate(`${base}/knowledge/${d.id}`);
    },
  });
  return (
    <MutationForm mutation={create} label="Create" busyLabel="Creating…">
      <Field label="Dataset name">{(id) => <input id={id} required maxLength={40} value={name} onChange={(e) => setName(e.target.value)} />}</Field>
      <Field label="Description">{(id) => <textarea id={id} maxLength={400} value={description} onChange={(e) => setDescription(e.target.value)} />}</Field>
      <Field label="Retrieval method">
        {(id) => <SearchMethodSelect id={id} value={method} onChange={setMethod} />}
      </Field>
    </MutationForm>
  );
}
