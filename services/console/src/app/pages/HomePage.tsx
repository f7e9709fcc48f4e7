/**
 * `/`: where a visitor belongs. A fresh install goes to the setup wizard; once set up, a signed-
 * out visitor goes to login and a signed-in one to their first workspace's apps.
 */
import { useQuery } from "@tanstack/react-query";
import { Navigate } from "react-router-dom";
import { api } from "../api";
import { useSignedIn } from "../auth";
import { ErrorMessage, Loading } from "../ui";
import { useWorkspaces } from "../workspace";

export function useSetupStatus() {
  return useQuery({
    queryKey: ["setup"],
    queryFn: () => api<{ step: "finished" | "not_started" }>("GET", "/console/api/setup"),
  });
}

export function HomePage() {
  const setup = useSetupStatus();
  const signedIn = useSignedIn();
  if (setup.isLoading) return <main className="centered"><Loading /></main>;
  if (setup.error) return <main className="centered"><ErrorMessage error={setup.error} /></main>;
  if (setup.data?.step !== "finished") return <Navigate to="/setup" replace />;
  if (!signedIn) return <Navigate to="/login" replace />;
  return <FirstWorkspace />;
}

function FirstWorkspace() {
  const workspaces = useWorkspaces();
  if (workspaces.isLoading) return <main className="centered"><Loading /></main>;
  if (workspaces.error) return <main className="centered"><ErrorMessage error={workspaces.error} /></main>;
  const first = workspaces.data?.[0];
  if (!first) return <main className="centered"><p className="empty">You are not a member of any workspace yet.</p></main>;
  return <Navigate to={`/w/${first.id}/apps`} replace />;
}
