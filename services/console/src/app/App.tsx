/**
 * The console's routes. Workspace pages live under /w/:ws so a link names its workspace; the
 * workflow editor is a lazily loaded chunk mounted by AppPage (see vite.config.ts).
 */
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { BrowserRouter, Navigate, Route, Routes } from "react-router-dom";
import { RequireAuth } from "./auth";
import { WorkspaceLayout } from "./Layout";
import { AcceptInvitePage } from "./pages/AcceptInvitePage";
import { AppPage } from "./pages/AppPage";
import { AppsPage } from "./pages/AppsPage";
import { AuditPage } from "./pages/AuditPage";
import { DatasetPage } from "./pages/DatasetPage";
import { HomePage } from "./pages/HomePage";
import { KnowledgePage } from "./pages/KnowledgePage";
import { LoginPage } from "./pages/LoginPage";
import { MembersPage } from "./pages/MembersPage";
import { SettingsPage } from "./pages/SettingsPage";
import { SetupPage } from "./pages/SetupPage";
import { ToolsPage } from "./pages/ToolsPage";

const queryClient = new QueryClient({
  defaultOptions: { queries: { retry: false, refetchOnWindowFocus: false, staleTime: 5_000 } },
});

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <Routes>
          <Route path="/" element={<HomePage />} />
          <Route path="/setup" element={<SetupPage />} />
          <Route path="/login" element={<LoginPage />} />
          <Route path="/invite" element={<AcceptInvitePage />} />
          <Route
            path="/w/:ws"
            element={
              <RequireAuth>
                <WorkspaceLayout />
              </RequireAuth>
            }
          >
            <Route index element={<Navigate to="apps" replace />} />
            <Route path="apps" element={<AppsPage />} />
            <Route path="apps/:appId" element={<AppPage />} />
            <Route path="apps/:appId/:tab" element={<AppPage />} />
            <Route path="knowledge" element={<KnowledgePage />} />
            <Route path="knowledge/:datasetId" element={<DatasetPage />} />
            <Route path="knowledge/:datasetId/:tab" element={<DatasetPage />} />
            <Route path="members" element={<MembersPage />} />
            <Route path="audit" element={<AuditPage />} />
            <Route path="settings" element={<SettingsPage />} />
            <Route path="tools" element={<ToolsPage />} />
          </Route>
          <Route path="*" element={<NotFound />} />
        </Routes>
      </BrowserRouter>
    </QueryClientProvider>
  );
}

function NotFound() {
  return (
    <main className="centered">
      <div className="card">
        <h1>Page not found</h1>
        <a href="/">Back to the console</a>
      </div>
    </main>
  );
}
