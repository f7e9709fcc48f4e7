/**
 * The audit log's settings (GET/PUT /workspaces/{ws}/audit-settings; the owner changes them):
 * how long entries are kept and what is recorded beyond console changes (always recorded):
 * API key usage, once per key and minute.
 */
import { useEffect, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import type { Schema } from "../schemas";
import { ErrorMessage, Field, Loading } from "../ui";

interface AuditSettingsBody {
  retention_days: number;
  record_key_usage?: boolean;
  record_console_changes?: boolean;
}

export function AuditSettings({ workspaceId, canManage }: { workspaceId: string; canManage: boolean }) {
  const path = `/console/api/workspaces/${workspaceId}/audit-settings`;
  const queryClient = useQueryClient();
  const current = useQuery({ queryKey: ["audit-settings", workspaceId], queryFn: () => api<AuditSettingsBody>("GET", path) });
  const [days, setDays] = useState("90");
  const [keyUsage, setKeyUsage] = useState(false);
  useEffect(() => {
    if (!current.data) return;
    setDays(String(current.data.retention_days));
    setKeyUsage(!!current.data.record_key_usage);
  }, [current.data]);
  const save = useMutation({
    mutationFn: () =>
      api<AuditSettingsBody>("PUT", path, {
        retention_days: Number(days),
        record_key_usage: keyUsage,
      } satisfies Schema<"AuditSettingsBody">),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["audit-settings", workspaceId] }),
  });
  if (current.isLoading) return <Loading />;
  if (current.error) return <ErrorMessage error={current.error} />;
  return (
    <form
      className="stack"
      aria-label="Audit log settings"
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <p className="muted">
        Every change made in the console or through the console API (sign-ins, apps, keys, members, settings) is recorded with
        its actor and IP.
      </p>
      <Field label="Keep audit entries for (days)">
        {(id) => <input id={id} type="number" min={1} max={3650} required value={days} disabled={!canManage} onChange={(e) => setDays(e.target.value)} />}
      </Field>
      <label className="switch">
        <input type="checkbox" checked={keyUsage} disabled={!canManage} onChange={(e) => setKeyUsage(e.target.checked)} />
        Also record API key usage (once per key and minute)
      </label>
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
