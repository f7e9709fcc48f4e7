/**
 * Workspace settings (owners and admins): the same forms as the setup wizard's steps (model
 * endpoints, default models, file storage) plus the workspace's name and its monitoring.
 */
import { useState, type FormEvent } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { can } from "../rbac";
import { DefaultModels } from "../settings/DefaultModels";
import { ModelEndpoints } from "../settings/ModelEndpoints";
import { StorageSettings } from "../settings/StorageSettings";
import { ErrorMessage, Field, Tabs } from "../ui";
import { useWorkspace } from "../workspace";
import { MonitoringTab } from "./app/MonitoringTab";
import type { Schema } from "../schemas";

const TABS = [
  { id: "workspace", label: "Workspace" },
  { id: "models", label: "Model endpoints" },
  { id: "defaults", label: "Default models" },
  { id: "storage", label: "File storage" },
  { id: "monitoring", label: "Monitoring" },
];

export function SettingsPage() {
  const { workspaceId, role } = useWorkspace();
  const [tab, setTab] = useState("workspace");
  const manage = can(role, "workspace.manage");
  return (
    <section aria-labelledby="settings-title" className="stack">
      <header className="page-header">
        <h1 id="settings-title">Settings</h1>
      </header>
      <Tabs tabs={TABS} current={tab} onSelect={setTab} />
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} className="tabpanel">
        {tab === "workspace" && <WorkspaceForm />}
        {tab === "models" && <ModelEndpoints workspaceId={workspaceId} canManage={manage} />}
        {tab === "defaults" && <DefaultModels workspaceId={workspaceId} canManage={manage} />}
        {tab === "storage" && <StorageSettings workspaceId={workspaceId} canManage={manage} />}
        {tab === "monitoring" && <MonitoringTab />}
      </div>
    </section>
  );
}

function WorkspaceForm() {
  const { workspaceId, workspaces } = useWorkspace();
  const queryClient = useQueryClient();
  const [name, setName] = useState(workspaces.find((w) => w.id === workspaceId)?.name ?? "");
  const [newName, setNewName] = useState("");
  const rename = useMutation({
    mutationFn: () => api("PATCH", `/console/api/workspaces/${workspaceId}`, { name } satisfies Schema<"WorkspacePatch">),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["workspaces"] }),
  });
  const create = useMutation({
    mutationFn: () => api<{ id: string }>("POST", "/console/api/workspaces", { name: newName } satisfies Schema<"WorkspaceBody">),
    onSuccess: () => {
      setNewName("");
      void queryClient.invalidateQueries({ queryKey: ["workspaces"] });
    },
  });
  return (
    <div className="stack">
      <form className="row subcard" onSubmit={(e: FormEvent) => { e.preventDefault(); rename.mutate(); }}>
        <Field label="Workspace name">{(id) => <input id={id} required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />}</Field>
        <button type="submit" disabled={rename.isPending}>Rename</button>
        <ErrorMessage error={rename.error} />
        {rename.isSuccess && <span className="success" role="status">Renamed.</span>}
      </form>
      <form className="row subcard" onSubmit={(e: FormEvent) => { e.preventDefault(); create.mutate(); }}>
        <Field label="New workspace" hint="You become its owner; switch to it in the sidebar.">
          {(id) => <input id={id} required maxLength={100} value={newName} onChange={(e) => setNewName(e.target.value)} />}
        </Field>
        <button type="submit" className="secondary" disabled={create.isPending}>Create workspace</button>
        <ErrorMessage error={create.error} />
        {create.isSuccess && <span className="success" role="status">Created.</span>}
      </form>
    </div>
  );
}
