/**
 * The workspace's apps: search and filter, create (blank in one of the five modes, from a
 * starter: a DSL document in templates.json, imported, or from the gateway's template catalogue:
 * installed with its datasets in one call), import a Dify DSL file, duplicate
 * (export + import), export as YAML, delete. Write controls appear only for
 * roles with `apps.write`.
 */
import { useMemo, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate } from "react-router-dom";
import { api } from "../api";
import { can } from "../rbac";
import { ConfirmButton, Empty, ErrorMessage, Field, Loading, Modal, MutationForm, formatTime } from "../ui";
import templates from "../templates.json";
import { useWorkspace } from "../workspace";
import type { Schema } from "../schemas";

export interface AppSummary {
  id: string;
  name: string;
  mode: Mode;
  description: string;
  icon: string;
  published_version: number | null;
  created_at: number;
  updated_at: number;
}

export type Mode = "chat" | "chatflow" | "workflow" | "agent" | "completion";

export const MODES: { id: Mode; label: string; about: string }[] = [
  { id: "chat", label: "Chatbot", about: "A conversation with a model and its memory." },
  { id: "chatflow", label: "Chatflow", about: "A conversation driven by a workflow graph." },
  { id: "workflow", label: "Workflow", about: "A graph run once per request: inputs in, outputs out." },
  { id: "agent", label: "Agent", about: "A model that reasons and calls tools in rounds." },
  { id: "completion", label: "Text generator", about: "One prompt, one completion." },
];

export function useApps(workspaceId: string) {
  return useQuery({
    queryKey: ["apps", workspaceId],
    queryFn: () => api<{ data: AppSummary[]; total: number }>("GET", `/console/api/workspaces/${workspaceId}/apps?limit=100`),
  });
}

/** Save text as a file the browser downloads. */
export function download(name: string, text: string, type = "application/x-yaml") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function AppsPage() {
  const { workspaceId, role, base } = useWorkspace();
  const apps = useApps(workspaceId);
  const queryClient = useQueryClient();
  const [search, setSearch] = useState("");
  const [mode, setMode] = useState<"" | Mode>("");
  const [dialog, setDialog] = useState<"" | "create" | "import">("");
  const [actionError, setActionError] = useState<unknown>(null);
  const writable = can(role, "apps.write");
  const appsPath = `/console/api/workspaces/${workspaceId}/apps`;
  const refresh = () => queryClient.invalidateQueries({ queryKey: ["apps", workspaceId] });

  const shown = useMemo(() => {
    const q = search.trim().toLowerCase();
    return (apps.data?.data ?? []).filter(
      (a) => (!mode || a.mode === mode) && (!q || a.name.toLowerCase().includes(q) || a.description.toLowerCase().includes(q)),
    );
  }, [apps.data, search, mode]);

  const act = async (fn: () => Promise<unknown>) => {
    setActionError(null);
    try {
      await fn();
      await refresh();
    } catch (err) {
      setActionError(err);
    }
  };
  const exportYaml = (app: AppSummary) => api<string>("GET", `${appsPath}/${app.id}/export`);

  return (
    <section aria-labelledby="apps-title">
      <header className="page-header">
        <h1 id="apps-title">Apps</h1>
        {writable && (
          <div className="row">
            <button type="button" className="secondary" onClick={() => setDialog("import")}>
              Import DSL
            </button>
            <button type="button" onClick={() => setDialog("create")}>
              Create app
            </button>
          </div>
        )}
      </header>
      <div className="row filters">
        <label className="sr-only" htmlFor="app-search">
          Search apps
        </label>
        <input id="app-search" type="search" placeholder="Search apps" value={search} onChange={(e) => setSearch(e.target.value)} />
        <label className="sr-only" htmlFor="app-mode">
          Mode
        </label>
        <select id="app-mode" value={mode} onChange={(e) => setMode(e.target.value as Mode | "")}>
          <option value="">All modes</option>
          {MODES.map((m) => (
            <option key={m.id} value={m.id}>
              {m.label}
            </option>
          ))}
        </select>
      </div>
      <ErrorMessage error={actionError} />
      {apps.isLoading ? (
        <Loading label="Loading apps…" />
      ) : apps.error ? (
        <ErrorMessage error={apps.error} />
      ) : shown.length === 0 ? (
        <Empty>{apps.data?.data.length ? "No app matches." : writable ? "No apps yet: create one or import a Dify DSL file." : "No apps yet."}</Empty>
      ) : (
        <ul className="cards" aria-label="App list" data-testid="app-list">
          {shown.map((app) => (
            <li key={app.id} className="app-card">
              <Link to={`${base}/apps/${app.id}`} className="app-name">
                {app.name}
              </Link>
              <span className={`mode mode-${app.mode}`}>{MODES.find((m) => m.id === app.mode)?.label ?? app.mode}</span>
              <p className="muted clamp">{app.description || "No description."}</p>
              <p className="muted small">
                {app.published_version ? `Published v${app.published_version}` : "Draft only"} · updated {formatTime(app.updated_at)}
              </p>
              <div className="row">
                <button type="button" className="ghost" onClick={() => act(async () => download(`${app.name}.yml`, await exportYaml(app)))}>
                  Export
                </button>
                {writable && (
                  <>
                    <button
                      type="button"
                      className="ghost"
                      onClick={() =>
                        act(async () => api("POST", `${appsPath}/import`, { data: await exportYaml(app), name: `${app.name} (copy)`.slice(0, 100) } satisfies Schema<"ImportBody">))
                      }
                    >
                      Duplicate
                    </button>
                    <ConfirmButton question={`Delete the app "${app.name}"? Its keys stop working.`} onConfirm={() => void act(() => api("DELETE", `${appsPath}/${app.id}`))}>Delete</ConfirmButton>
                  </>
                )}
              </div>
            </li>
          ))}
        </ul>
      )}
      <Modal title="Create an app" open={dialog === "create"} onClose={() => setDialog("")}>
        <CreateApp appsPath={appsPath} onCreated={(id) => { setDialog(""); void refresh(); return `${base}/apps/${id}`; }} />
      </Modal>
      <Modal title="Import a Dify DSL file" open={dialog === "import"} onClose={() => setDialog("")}>
        <ImportApp appsPath={appsPath} onCreated={(id) => { setDialog(""); void refresh(); return `${base}/apps/${id}`; }} />
      </Modal>
    </section>
  );
}

/** A template of the gateway's catalogue (GET .../templates; docs/templates/README.md). */
export interface CatalogueTemplate {
  id: string;
  name: string;
  description: string;
  mode: Mode;
  datasets: { key: string; name: string; files: number }[];
}

const CATALOGUE = "catalogue:"; // the select's value for a catalogue template, beside the starters' ids

/** What "Start from" offers: the starters of templates.json first, then the catalogue's. */
export function startOptions(catalogue: CatalogueTemplate[]): { value: string; label: string; about: string }[] {
  return [
    ...templates.map((t) => ({ value: t.id, label: `Template: ${t.label}`, about: t.about })),
    ...catalogue.map((t) => ({
      value: `${CATALOGUE}${t.id}`,
      label: `Template: ${t.name}`,
      about: t.datasets.length ? `${t.description} Also creates: ${t.datasets.map((d) => d.name).join(", ")}.` : t.description,
    })),
  ];
}

function CreateApp({ appsPath, onCreated }: { appsPath: string; onCreated: (id: string) => string }) {
  const [name, setName] = useState("");
  const [mode, setMode] = useState<Mode>("chatflow");
  const [template, setTemplate] = useState("");
  const [description, setDescription] = useState("");
  const navigate = useNavigate();
  const templatesPath = appsPath.replace(/\/apps$/, "/templates");
  const catalogue = useQuery({
    queryKey: ["templates", templatesPath],
    queryFn: () => api<{ data: CatalogueTemplate[] }>("GET", templatesPath),
  });
  const options = startOptions(catalogue.data?.data ?? []);
  const picked = options.find((o) => o.value === template);
  const starter = templates.find((t) => t.id === template);
  const create = useMutation({
    mutationFn: async () => {
      if (template.startsWith(CATALOGUE)) {
        const id = template.slice(CATALOGUE.length);
        const out = await api<{ app: AppSummary }>("POST", `${templatesPath}/${id}/install`, { name: name || null } satisfies Schema<"InstallBody">);
        return out.app;
      }
      return starter
        ? api<AppSummary>("POST", `${appsPath}/import`, { data: JSON.stringify(starter.dsl), name: name || null } satisfies Schema<"ImportBody">)
        : api<AppSummary>("POST", appsPath, { name, mode, description, icon: "" } satisfies Schema<"AppCreate">);
    },
    onSuccess: (app) => navigate(onCreated(app.id)),
  });
  const chosen = picked ? { label: picked.label.replace(/^Template: /, ""), about: picked.about } : undefined;
  return (
    <MutationForm mutation={create} label="Create" busyLabel="Creating…">
      <Field label="Start from">
        {(id) => (
          <select id={id} value={template} onChange={(e) => setTemplate(e.target.value)}>
            <option value="">A blank app</option>
            {options.map((o) => (
              <option key={o.value} value={o.value}>
                {o.label}
              </option>
            ))}
          </select>
        )}
      </Field>
      {chosen ? (
        <p className="muted">{chosen.about}</p>
      ) : (
        <fieldset className="modes">
          <legend>Mode</legend>
          {MODES.map((m) => (
            <label key={m.id} className={mode === m.id ? "mode-option selected" : "mode-option"}>
              <input type="radio" name="mode" value={m.id} checked={mode === m.id} onChange={() => setMode(m.id)} />
              <strong>{m.label}</strong>
              <span className="muted small">{m.about}</span>
            </label>
          ))}
        </fieldset>
      )}
      <Field label="App name" hint={chosen ? `Empty: "${chosen.label}".` : undefined}>
        {(id) => <input id={id} required={!chosen} maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />}
      </Field>
      {!chosen && (
        <Field label="Description">{(id) => <textarea id={id} maxLength={2000} value={description} onChange={(e) => setDescription(e.target.value)} />}</Field>
      )}
    </MutationForm>
  );
}

function ImportApp({ appsPath, onCreated }: { appsPath: string; onCreated: (id: string) => string }) {
  const [data, setData] = useState("");
  const [name, setName] = useState("");
  const navigate = useNavigate();
  const imported = useMutation({
    mutationFn: () => api<AppSummary>("POST", `${appsPath}/import`, { data, name: name || null } satisfies Schema<"ImportBody">),
    onSuccess: (app) => navigate(onCreated(app.id)),
  });
  return (
    <MutationForm mutation={imported} label="Import" busyLabel="Importing…" disabled={!data}>
      <Field label="DSL file (.yml, .yaml, .json)">
        {(id) => (
          <input
            id={id}
            type="file"
            accept=".yml,.yaml,.json,text/yaml,application/json"
            onChange={async (e) => {
              const file = e.target.files?.[0];
              if (file) setData(await file.text());
            }}
          />
        )}
      </Field>
      <Field label="…or paste the DSL">
        {(id) => <textarea id={id} rows={8} className="mono" value={data} onChange={(e) => setData(e.target.value)} />}
      </Field>
      <Field label="Name" hint="Optional: overrides the file's app name.">
        {(id) => <input id={id} maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />}
      </Field>
    </MutationForm>
  );
}
