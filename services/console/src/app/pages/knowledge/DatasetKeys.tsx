/**
 * The workspace's dataset API keys (the Dify knowledge API's `dataset-…` keys): create (shown
 * once), revoke, and a curl example. Shown to roles with `dataset_keys.manage`.
 */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../../api";
import type { Schema } from "../../schemas";
import { CopyButton, Empty, ErrorMessage, Field, Loading, formatTime } from "../../ui";
import { useWorkspace } from "../../workspace";

interface DatasetKey {
  id: string;
  token: string;
  name: string;
  created_at: number;
  last_used_at: number | null;
}

export function DatasetKeys() {
  const { workspaceId } = useWorkspace();
  const path = `/console/api/workspaces/${workspaceId}/dataset-api-keys`;
  const queryClient = useQueryClient();
  const keys = useQuery({ queryKey: ["dataset-keys", workspaceId], queryFn: () => api<{ data: DatasetKey[] }>("GET", path) });
  const [name, setName] = useState("");
  const [created, setCreated] = useState<DatasetKey | null>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: ["dataset-keys", workspaceId] });
  const create = useMutation({
    mutationFn: () => api<DatasetKey>("POST", path, { name } satisfies Schema<"KeyBody">),
    onSuccess: (key) => {
      setCreated(key);
      setName("");
      void refresh();
    },
  });
  const revoke = useMutation({ mutationFn: (id: string) => api("DELETE", `${path}/${id}`), onSuccess: refresh });
  const example = `curl '${window.location.origin}/v1/datasets?page=1&limit=20' \\\n  -H 'Authorization: Bearer $LOOM_DATASET_KEY'`;
  return (
    <section className="subcard" aria-labelledby="dataset-keys-title">
      <h2 id="dataset-keys-title">Knowledge API keys</h2>
      <p className="muted">
        A dataset key reaches every dataset of this workspace through the knowledge API (<code>/v1/datasets</code>).
      </p>
      {created && (
        <div className="notice" role="status">
          <p><strong>Copy this key now: it will not be shown again.</strong></p>
          <p>
            <code data-testid="new-dataset-key">{created.token}</code> <CopyButton text={created.token} />
          </p>
          <button type="button" className="ghost" onClick={() => setCreated(null)}>I have copied it</button>
        </div>
      )}
      {keys.isLoading ? (
        <Loading />
      ) : keys.error ? (
        <ErrorMessage error={keys.error} />
      ) : keys.data?.data.length ? (
        <table aria-label="Knowledge API keys">
          <thead>
            <tr><th>Name</th><th>Key</th><th>Created</th><th>Last used</th><th aria-label="Actions" /></tr>
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
        <Empty>No knowledge API keys yet.</Empty>
      )}
      <ErrorMessage error={revoke.error} />
      <form
        className="row"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Field label="Dataset key name">{(id) => <input id={id} maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />}</Field>
        <button type="submit" disabled={create.isPending}>{create.isPending ? "Creating…" : "Create dataset key"}</button>
      </form>
      <ErrorMessage error={create.error} />
      <pre className="code">{example}</pre>
    </section>
  );
}
