/**
 * One app: its header (mode, published version, publish) and tabs: the workflow editor (lazily
 * loaded: console-editor's EditorPage, its own chunk), API access, logs and monitoring. Tabs the
 * member's role cannot use are not offered.
 */
import { lazy, Suspense } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate, useParams } from "react-router-dom";
import { api } from "../api";
import { can } from "../rbac";
import { ErrorMessage, Loading, Tabs, type Tab } from "../ui";
import { useWorkspace } from "../workspace";
import { MODES, type AppSummary } from "./AppsPage";
import { ApiAccessTab } from "./app/ApiAccessTab";
import { LogsTab } from "./app/LogsTab";
import { MonitoringTab } from "./app/MonitoringTab";

const EditorPage = lazy(() => import("../../editor/index"));

export function useApp(workspaceId: string, appId: string) {
  return useQuery({
    queryKey: ["app", workspaceId, appId],
    queryFn: () => api<AppSummary>("GET", `/console/api/workspaces/${workspaceId}/apps/${appId}`),
  });
}

export function AppPage() {
  const { appId = "", tab = "editor" } = useParams();
  const { workspaceId, role, base } = useWorkspace();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const app = useApp(workspaceId, appId);
  const publish = useMutation({
    mutationFn: () => api<{ version: number }>("POST", `/console/api/workspaces/${workspaceId}/apps/${appId}/publish`),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["app", workspaceId, appId] });
      void queryClient.invalidateQueries({ queryKey: ["apps", workspaceId] });
    },
  });

  const tabs: Tab[] = [{ id: "editor", label: "Editor" }];
  if (can(role, "app_keys.manage")) tabs.push({ id: "api", label: "API access" });
  if (can(role, "runs.read")) tabs.push({ id: "logs", label: "Logs" }, { id: "monitoring", label: "Monitoring" });
  const current = tabs.some((t) => t.id === tab) ? tab : "editor";

  if (app.isLoading) return <Loading label="Loading the app…" />;
  if (app.error || !app.data) return <ErrorMessage error={app.error ?? "App not found"} />;
  const a = app.data;

  return (
    <section aria-labelledby="app-title" className="app-page">
      <header className="page-header">
        <div>
          <p className="crumbs">
            <Link to={`${base}/apps`}>Apps</Link> /
          </p>
          <h1 id="app-title">{a.name}</h1>
          <p className="muted small">
            {MODES.find((m) => m.id === a.mode)?.label ?? a.mode} ·{" "}
            <span data-testid="published-version">{a.published_version ? `published v${a.published_version}` : "not published"}</span>
          </p>
        </div>
        {/* The editor tab has its own toolbar (save, validate, publish); elsewhere publish is here. */}
        {can(role, "apps.write") && current !== "editor" && (
          <div className="row">
            <button type="button" data-testid="publish" onClick={() => publish.mutate()} disabled={publish.isPending}>
              {publish.isPending ? "Publishing…" : "Publish"}
            </button>
          </div>
        )}
      </header>
      <ErrorMessage error={publish.error} />
      {publish.data && <p className="success" role="status">Published version {publish.data.version}.</p>}
      <Tabs tabs={tabs} current={current} onSelect={(id) => navigate(`${base}/apps/${appId}/${id}`)} />
      <div role="tabpanel" id={`panel-${current}`} aria-labelledby={`tab-${current}`} className="tabpanel">
        {current === "editor" && (
          <Suspense fallback={<Loading label="Loading the editor…" />}>
            <EditorPage workspaceId={workspaceId} appId={appId} role={role} />
          </Suspense>
        )}
        {current === "api" && <ApiAccessTab app={a} />}
        {current === "logs" && <LogsTab app={a} />}
        {current === "monitoring" && <MonitoringTab appId={a.id} />}
      </div>
    </section>
  );
}
