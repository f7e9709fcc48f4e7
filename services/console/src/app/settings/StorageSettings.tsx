/**
 * Where the workspace's uploaded files live (GET/PUT /workspaces/{ws}/settings/storage, POST …/test):
 * the gateway's local folder, or an S3-compatible bucket checked by a real write/read/delete of a
 * probe object. The secret key is write-only: left empty, the stored one is kept.
 */
import { useEffect, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import type { Schema } from "../schemas";
import { ErrorMessage, Field, Loading } from "../ui";

interface S3Public {
  bucket: string;
  prefix: string;
  endpoint_url: string | null;
  region: string | null;
  access_key_id: string | null;
  secret_access_key_set?: boolean;
  secret_access_key_hint?: string;
}

interface Storage {
  backend: "local" | "s3";
  local: { path: string } | null;
  s3: S3Public | null;
}

const emptyS3 = { bucket: "", prefix: "gateway", endpoint_url: "", region: "", access_key_id: "", secret_access_key: "" };

export function StorageSettings({ workspaceId, canManage = true }: { workspaceId: string; canManage?: boolean }) {
  const path = `/console/api/workspaces/${workspaceId}/settings/storage`;
  const queryClient = useQueryClient();
  const current = useQuery({ queryKey: ["storage", workspaceId], queryFn: () => api<Storage>("GET", path) });
  const [backend, setBackend] = useState<"local" | "s3">("local");
  const [s3, setS3] = useState(emptyS3);
  useEffect(() => {
    if (!current.data) return;
    setBackend(current.data.backend);
    const c = current.data.s3;
    if (c) setS3({ bucket: c.bucket, prefix: c.prefix, endpoint_url: c.endpoint_url ?? "", region: c.region ?? "", access_key_id: c.access_key_id ?? "", secret_access_key: "" });
  }, [current.data]);
  const body = (): Schema<"StorageBody"> =>
    backend === "local"
      ? { backend: "local", s3: null }
      : {
          backend: "s3",
          s3: {
            bucket: s3.bucket,
            prefix: s3.prefix,
            endpoint_url: s3.endpoint_url || null,
            region: s3.region || null,
            access_key_id: s3.access_key_id || null,
            secret_access_key: s3.secret_access_key || null,
          },
        };
  const test = useMutation({ mutationFn: () => api<{ ok: boolean; backend: string; error: string | null }>("POST", `${path}/test`, body()) });
  const save = useMutation({
    mutationFn: () => api<Storage>("PUT", path, body()),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["storage", workspaceId] }),
  });
  if (current.isLoading) return <Loading />;
  if (current.error) return <ErrorMessage error={current.error} />;
  const set = (key: keyof typeof emptyS3) => (e: React.ChangeEvent<HTMLInputElement>) => setS3({ ...s3, [key]: e.target.value });
  const stored = current.data?.s3;
  return (
    <form
      className="stack"
      aria-label="File storage"
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <Field label="Storage backend">
        {(id) => (
          <select id={id} value={backend} disabled={!canManage} onChange={(e) => setBackend(e.target.value as "local" | "s3")}>
            <option value="local">Local folder{current.data?.local ? ` (${current.data.local.path})` : ""}</option>
            <option value="s3">S3-compatible bucket</option>
          </select>
        )}
      </Field>
      {backend === "s3" && (
        <div className="grid2">
          <Field label="Bucket">{(id) => <input id={id} required minLength={3} maxLength={63} value={s3.bucket} onChange={set("bucket")} />}</Field>
          <Field label="Key prefix">{(id) => <input id={id} maxLength={200} value={s3.prefix} onChange={set("prefix")} />}</Field>
          <Field label="Endpoint URL" hint="Empty for AWS itself.">{(id) => <input id={id} type="url" value={s3.endpoint_url} onChange={set("endpoint_url")} />}</Field>
          <Field label="Region">{(id) => <input id={id} maxLength={64} value={s3.region} onChange={set("region")} />}</Field>
          <Field label="Access key ID">{(id) => <input id={id} autoComplete="off" maxLength={128} value={s3.access_key_id} onChange={set("access_key_id")} />}</Field>
          <Field label="Secret access key" hint={stored?.secret_access_key_set ? `Stored (${stored.secret_access_key_hint ?? "hidden"}); leave empty to keep it.` : undefined}>
            {(id) => <input id={id} type="password" autoComplete="off" maxLength={256} value={s3.secret_access_key} onChange={set("secret_access_key")} />}
          </Field>
        </div>
      )}
      {test.data && (
        <p className={test.data.ok ? "success" : "error"} role="status" data-testid="storage-test">
          {test.data.ok ? `Connection works (${test.data.backend})` : `Connection failed: ${test.data.error ?? "unknown error"}`}
        </p>
      )}
      <ErrorMessage error={test.error ?? save.error} />
      {save.isSuccess && <p className="success" role="status">Saved.</p>}
      {canManage && (
        <div className="row">
          <button type="button" className="secondary" onClick={() => test.mutate()} disabled={test.isPending}>
            {test.isPending ? "Testing…" : "Test connection"}
          </button>
          <button type="submit" disabled={save.isPending}>{save.isPending ? "Saving…" : "Save storage"}</button>
        </div>
      )}
    </form>
  );
}
