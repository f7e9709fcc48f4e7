/**
 * The workspace's default chat and embedding models (GET/PUT /workspaces/{ws}/settings/default-models):
 * new apps start with the chat model, new datasets embed with the embedding model. Empty = the
 * service's default. The names offered come from GET /workspaces/{ws}/models: the engine's own
 * models and those of the workspace's endpoints.
 */
import { useEffect, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import type { Schema } from "../schemas";
import { ErrorMessage, Field, Loading } from "../ui";

export interface WorkspaceModel {
  name: string;
  kind: string;
  source: "engine" | "endpoint";
  endpoint_name: string | null;
}

export function useWorkspaceModels(workspaceId: string) {
  return useQuery({
    queryKey: ["models", workspaceId],
    queryFn: () => api<{ data: WorkspaceModel[]; engine_available: boolean }>("GET", `/console/api/workspaces/${workspaceId}/models`),
  });
}

interface Defaults {
  default_chat_model: string | null;
  default_embedding_model: string | null;
  chat_model_is_default?: boolean;
  embedding_model_is_default?: boolean;
}

export function DefaultModels({ workspaceId, canManage = true }: { workspaceId: string; canManage?: boolean }) {
  const path = `/console/api/workspaces/${workspaceId}/settings/default-models`;
  const queryClient = useQueryClient();
  const current = useQuery({ queryKey: ["default-models", workspaceId], queryFn: () => api<Defaults>("GET", path) });
  const models = useWorkspaceModels(workspaceId);
  const [chat, setChat] = useState("");
  const [embedding, setEmbedding] = useState("");
  useEffect(() => {
    setChat(current.data?.default_chat_model ?? "");
    setEmbedding(current.data?.default_embedding_model ?? "");
  }, [current.data]);
  const save = useMutation({
    mutationFn: () =>
      api<Defaults>("PUT", path, {
        default_chat_model: chat.trim() || null,
        default_embedding_model: embedding.trim() || null,
      } satisfies Schema<"DefaultModelsBody">),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["default-models", workspaceId] }),
  });
  if (current.isLoading) return <Loading />;
  if (current.error) return <ErrorMessage error={current.error} />;
  const named = (kind: string) => [...new Set((models.data?.data ?? []).filter((m) => m.kind === kind).map((m) => m.name))];
  return (
    <form
      className="stack"
      aria-label="Default models"
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <datalist id="chat-models">{named("chat").map((m) => <option key={m} value={m} />)}</datalist>
      <datalist id="embedding-models">{named("embedding").map((m) => <option key={m} value={m} />)}</datalist>
      <div className="grid2">
        <Field label="Default chat model" hint={current.data?.chat_model_is_default ? "The service's default." : "Empty = the service's default."}>
          {(id) => <input id={id} list="chat-models" value={chat} disabled={!canManage} maxLength={200} onChange={(e) => setChat(e.target.value)} />}
        </Field>
        <Field label="Default embedding model" hint={current.data?.embedding_model_is_default ? "The service's default." : "Empty = the service's default."}>
          {(id) => <input id={id} list="embedding-models" value={embedding} disabled={!canManage} maxLength={200} onChange={(e) => setEmbedding(e.target.value)} />}
        </Field>
      </div>
      <ErrorMessage error={save.error} />
      {save.isSuccess && <p className="success" role="status">Saved.</p>}
      {canManage && (
        <div className="row">
          <button type="submit" disabled={save.isPending}>{save.isPending ? "Saving…" : "Save default models"}</button>
        </div>
      )}
    </form>
  );
}
