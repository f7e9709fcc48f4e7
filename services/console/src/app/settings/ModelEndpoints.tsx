/**
 * A workspace's model endpoints (Dify's model providers): remote OpenAI-compatible or Ollama
 * servers, with "Test connection" making a real call through the gateway before saving; above
 * them, pulling a model into the local engine with its progress (ModelPull).
 * Routes: GET/POST /workspaces/{ws}/model-endpoints, DELETE …/{id}, POST …/test. The API key is
 * sent once and never shown again (the gateway keeps it encrypted and returns only a hint).
 */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import type { Schema } from "../schemas";
import { Empty, ErrorMessage, Field, Loading } from "../ui";
import { useWorkspaceModels } from "./DefaultModels";
import { ModelPull } from "./ModelPull";

export interface ModelEndpoint {
  id: string;
  name: string;
  kind: "openai" | "ollama";
  base_url: string;
  api_key_hint?: string;
  models?: string[];
}

interface TestResult {
  ok: boolean;
  error: string | null;
  models: string[];
  latency_ms: number;
}

const blank = { name: "", kind: "openai" as "openai" | "ollama", base_url: "", api_key: "", models: "" };

export function ModelEndpoints({ workspaceId, canManage = true }: { workspaceId: string; canManage?: boolean }) {
  const base = `/console/api/workspaces/${workspaceId}/model-endpoints`;
  const queryClient = useQueryClient();
  const list = useQuery({ queryKey: ["model-endpoints", workspaceId], queryFn: () => api<{ data: ModelEndpoint[] }>("GET", base) });
  const models = useWorkspaceModels(workspaceId);
  const engine = (models.data?.data ?? []).filter((m) => m.source === "engine");
  const [form, setForm] = useState(blank);
  const [tested, setTested] = useState<TestResult | null>(null);
  const body = () =>
    ({
      name: form.name,
      kind: form.kind,
      base_url: form.base_url,
      api_key: form.api_key || null,
      models: form.models
        .split(",")
        .map((m) => m.trim())
        .filter(Boolean),
    }) satisfies Schema<"EndpointBody">;
  const testBody = () => ({ kind: form.kind, base_url: form.base_url, api_key: form.api_key || null }) satisfies Schema<"EndpointTestBody">;
  const test = useMutation({
    mutationFn: () => api<TestResult>("POST", `${base}/test`, testBody()),
    onSuccess: setTested,
    onMutate: () => setTested(null),
  });
  const create = useMutation({
    mutationFn: () => api<ModelEndpoint>("POST", base, body()),
    onSuccess: () => {
      setForm(blank);
      setTested(null);
      void queryClient.invalidateQueries({ queryKey: ["model-endpoints", workspaceId] });
      void queryClient.invalidateQueries({ queryKey: ["models", workspaceId] });
    },
  });
  const remove = useMutation({
    mutationFn: (id: string) => api("DELETE", `${base}/${id}`),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["model-endpoints", workspaceId] }),
  });
  const set = (key: keyof typeof blank) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setForm({ ...form, [key]: e.target.value });

  return (
    <div className="stack">
      <p className="muted">
        The local engine's models are available to every workspace
        {models.data
          ? models.data.engine_available
            ? `: ${engine.map((m) => `${m.name} (${m.kind})`).join(", ") || "none pulled yet"}.`
            : " (the engine is not reachable right now)."
          : "."}{" "}
        Add remote OpenAI-compatible or Ollama servers here.
      </p>
      {canManage && <ModelPull workspaceId={workspaceId} />}
      {list.isLoading ? (
        <Loading />
      ) : list.error ? (
        <ErrorMessage error={list.error} />
      ) : list.data?.data.length ? (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Kind</th>
              <th>Base URL</th>
              <th>Models</th>
              <th>Key</th>
              <th aria-label="Actions" />
            </tr>
          </thead>
          <tbody>
            {list.data.data.map((e) => (
              <tr key={e.id}>
                <td>{e.name}</td>
                <td>{e.kind}</td>
                <td><code>{e.base_url}</code></td>
                <td>{(e.models ?? []).join(", ") || "–"}</td>
                <td>{e.api_key_hint || "–"}</td>
                <td>
                  {canManage && (
                    <button type="button" className="danger ghost" onClick={() => remove.mutate(e.id)} aria-label={`Delete endpoint ${e.name}`}>
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Empty>No remote endpoints yet.</Empty>
      )}
      <ErrorMessage error={remove.error} />
      {canManage && (
        <form
          className="subcard"
          aria-label="Add a model endpoint"
          onSubmit={(e: FormEvent) => {
            e.preventDefault();
            create.mutate();
          }}
        >
          <h3>Add an endpoint</h3>
          <div className="grid2">
            <Field label="Endpoint name">{(id) => <input id={id} required maxLength={100} value={form.name} onChange={set("name")} />}</Field>
            <Field label="Kind">
              {(id) => (
                <select id={id} value={form.kind} onChange={set("kind")}>
                  <option value="openai">OpenAI-compatible</option>
                  <option value="ollama">Ollama</option>
                </select>
              )}
            </Field>
            <Field label="Base URL" hint="e.g. http://127.0.0.1:11434">
              {(id) => <input id={id} type="url" required value={form.base_url} onChange={set("base_url")} />}
            </Field>
            <Field label="API key" hint="Optional; stored encrypted, never shown again.">
              {(id) => <input id={id} type="password" autoComplete="off" value={form.api_key} onChange={set("api_key")} />}
            </Field>
            <Field label="Models" hint="Comma-separated; empty = what the server lists.">
              {(id) => <input id={id} value={form.models} onChange={set("models")} />}
            </Field>
          </div>
          <div className="row">
            <button type="button" className="secondary" disabled={!form.base_url || test.isPending} onClick={() => test.mutate()}>
              {test.isPending ? "Testing…" : "Test connection"}
            </button>
            <button type="submit" disabled={create.isPending}>
              {create.isPending ? "Saving…" : "Add endpoint"}
            </button>
          </div>
          {tested && (
            <div className={tested.ok ? "success" : "error"} role="status" data-testid="endpoint-test">
              {tested.ok ? "Connection works" : "Connection failed"}
              {tested.error ? `: ${tested.error}` : ""}
              {tested.models.length ? ` (models: ${tested.models.join(", ")})` : ""} in {Math.round(tested.latency_ms)} ms
            </div>
          )}
          <ErrorMessage error={test.error ?? create.error} />
        </form>
      )}
    </div>
  );
}
