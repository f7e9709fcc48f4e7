/** A dataset's name, description, chunking and retrieval method (PATCH /v1/datasets/{id}), and deleting it. */
import { useState, type FormEvent } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "react-router-dom";
import { api } from "../../api";
import { ConfirmButton, ErrorMessage, Field } from "../../ui";
import { kbHeaders, useWorkspace } from "../../workspace";
import { SearchMethodSelect, type Dataset } from "../KnowledgePage";
import type { Schema } from "../../schemas";
import { ChunkingFields, formFromRule, ruleFromForm } from "./chunking";

export function DatasetSettings({ dataset }: { dataset: Dataset }) {
  const { workspaceId, base } = useWorkspace();
  const headers = kbHeaders(workspaceId);
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const [name, setName] = useState(dataset.name);
  const [description, setDescription] = useState(dataset.description ?? "");
  const [method, setMethod] = useState(dataset.retrieval_model_dict?.search_method ?? "semantic_search");
  const [chunking, setChunking] = useState(() => formFromRule(dataset.process_rule));
  const save = useMutation({
    mutationFn: () =>
      api<Dataset>(
        "PATCH",
        `/v1/datasets/${dataset.id}`,
        { name, description, retrieval_model: { search_method: method }, process_rule: { ...ruleFromForm(chunking) } } satisfies Schema<"DatasetPatch">,
        { headers },
      ),
    onSuccess: (saved) => {
      queryClient.setQueryData(["dataset", workspaceId, dataset.id], saved);
      void queryClient.invalidateQueries({ queryKey: ["dataset", workspaceId, dataset.id] });
    },
  });
  const remove = useMutation({
    mutationFn: () => api("DELETE", `/v1/datasets/${dataset.id}`, undefined, { headers }),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["datasets", workspaceId] });
      navigate(`${base}/knowledge`);
    },
  });
  return (
    <div className="stack">
      <form
        className="stack subcard"
        aria-label="Dataset settings"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          save.mutate();
        }}
      >
        <Field label="Name">{(id) => <input id={id} required maxLength={40} value={name} onChange={(e) => setName(e.target.value)} />}</Field>
        <Field label="Description">{(id) => <textarea id={id} maxLength={400} value={description} onChange={(e) => setDescription(e.target.value)} />}</Field>
        <Field label="Retrieval method" hint="Used by retrieval testing and knowledge-retrieval nodes that do not choose one.">
          {(id) => <SearchMethodSelect id={id} value={method} onChange={setMethod} />}
        </Field>
        <ChunkingFields value={chunking} onChange={setChunking} />
        <p className="muted small">Chunking applies to documents added from now on; those indexed already keep their chunks.</p>
        <ErrorMessage error={save.error} />
        {save.isSuccess && <p className="success" role="status">Saved.</p>}
        <div className="row">
          <button type="submit" disabled={save.isPending}>{save.isPending ? "Saving…" : "Save settings"}</button>
        </div>
      </form>
      <section className="subcard danger-zone">
        <h2>Delete this dataset</h2>
        <p className="muted">Its documents and chunks are deleted; apps that retrieve from it find nothing.</p>
        <ConfirmButton question={`Delete the dataset "${dataset.name}"?`} onConfirm={() => remove.mutate()} className="danger">Delete dataset</ConfirmButton>
        <ErrorMessage error={remove.error} />
      </section>
    </div>
  );
}
