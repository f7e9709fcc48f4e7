/**
 * A list of API keys behind one console path (an app's service API keys, the workspace's dataset
 * keys): create (the new token shown once, to be copied), revoke, with the caller's labels.
 */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "./api";
import type { Schema } from "./schemas";
import { ConfirmButton, CopyButton, Empty, ErrorMessage, Field, Loading, formatTime } from "./ui";

export interface ApiKey {
  id: string;
  token: string;
  name: string;
  created_at: number;
  last_used_at: number | null;
}

export interface ApiKeysProps {
  /** The console path that lists (GET), creates (POST) and, with `/{id}`, revokes (DELETE) keys. */
  path: string;
  queryKey: readonly unknown[];
  nameLabel: string;
  createLabel: string;
  emptyText: string;
  /** data-testid of the new token (browser tests read it). */
  tokenTestId: string;
  noticeTestId?: string;
  tableLabel?: string;
}

export function ApiKeys({ path, queryKey, nameLabel, createLabel, emptyText, tokenTestId, noticeTestId, tableLabel }: ApiKeysProps) {
  const queryClient = useQueryClient();
  const keys = useQuery({ queryKey, queryFn: () => api<{ data: ApiKey[] }>("GET", path) });
  const [name, setName] = useState("");
  const [created, setCreated] = useState<ApiKey | null>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey });
  const create = useMutation({
    mutationFn: () => api<ApiKey>("POST", path, { name } satisfies Schema<"KeyBody">),
    onSuccess: (key) => {
      setCreated(key);
      setName("");
      void refresh();
    },
  });
  const revoke = useMutation({ mutationFn: (id: string) => api("DELETE", `${path}/${id}`), onSuccess: refresh });

  return (
    <>
      {created && (
        <div className="notice" role="status" data-testid={noticeTestId}>
          <p>
            <strong>Copy this key now: it will not be shown again.</strong>
          </p>
          <p>
            <code data-testid={tokenTestId}>{created.token}</code> <CopyButton text={created.token} />
          </p>
          <button type="button" className="ghost" onClick={() => setCreated(null)}>
            I have copied it
          </button>
        </div>
      )}
      {keys.isLoading ? (
        <Loading />
      ) : keys.error ? (
        <ErrorMessage error={keys.error} />
      ) : keys.data?.data.length ? (
        <table aria-label={tableLabel}>
          <thead>
            <tr>
              <th>Name</th>
              <th>Key</th>
              <th>Created</th>
              <th>Last used</th>
              <th aria-label="Actions" />
            </tr>
          </thead>
          <tbody>
            {keys.data.data.map((k) => (
              <tr key={k.id}>
                <td>{k.name || "–"}</td>
                <td><code>{k.token}</code></td>
                <td>{formatTime(k.created_at)}</td>
                <td>{formatTime(k.last_used_at)}</td>
                <td>
                  <ConfirmButton question="Revoke this key? Clients using it stop working at once." onConfirm={() => revoke.mutate(k.id)}>Revoke</ConfirmButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Empty>{emptyText}</Empty>
      )}
      <ErrorMessage error={revoke.error} />
      <form
        className="row"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Field label={nameLabel}>{(id) => <input id={id} maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />}</Field>
        <button type="submit" disabled={create.isPending}>{create.isPending ? "Creating…" : createLabel}</button>
      </form>
      <ErrorMessage error={create.error} />
    </>
  );
}
