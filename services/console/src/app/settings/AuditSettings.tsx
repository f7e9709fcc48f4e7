/** How long the audit log keeps entries (GET/PUT /workspaces/{ws}/audit-settings; the owner sets it). */
import { useEffect, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { ErrorMessage, Field, Loading } from "../ui";
import type { Schema } from "../schemas";

interface AuditSettingsBody {
  retention_days: number;
}

export function AuditSettings({ workspaceId, canManage }: { workspaceId: string; canManage: boolean }) {
  const path = `/console/api/workspaces/${workspaceId}/audit-settings`;
  const queryClient = useQueryClient();
  const current = useQuery({ queryKey: ["audit-settings", workspaceId], queryFn: () => api<AuditSettingsBody>("GET", path) });
  const [days, setDays] = useState("90");
  useEffect(() => {
    if (current.data) setDays(String(current.data.retention_days));
  }, [current.data]);
  const save = useMutation({
    mutationFn: () => api<AuditSettingsBody>("PUT", path, { retention_days: Number(days) } satisfies Schema<"RetentionBody">),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["audit-settings", workspaceId] }),
  });
  if (current.isLoading) return <Loading />;
  if (current.error) return <ErrorMessage error={current.error} />;
  return (
    <form
      className="stack"
      aria-label="Audit log retention"
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <p className="muted">
        Every change made through the console or the API (sign-ins, apps, keys, members, settings) is recorded with its actor and IP.
      </p>
      <Field label="Keep audit entries for (days)">
        {(id) => <input id={id} type="number" min={1} max={3650} required value={days} disabled={!canManage} onChange={(e) => setDays(e.target.value)} />}
      </Field>
      <ErrorMessage error={save.error} />
      {save.isSuccess && <p className="success" role="status">Saved.</p>}
      {canManage && (
        <div className="row">
          <button type="submit" disabled={save.isPending}>{save.isPending ? "Saving…" : "Save retention"}</button>
        </div>
      )}
    </form>
  );
}
