/**
 * The workspace the console is looking at (the `:ws` of /w/:ws/...) and the member's role in
 * it, from GET /console/api/workspaces. Pages read it with `useWorkspace()`.
 */
import { createContext, useContext, type ReactNode } from "react";
import { useQuery } from "@tanstack/react-query";
import { api } from "./api";
import type { Role } from "./rbac";

export interface WorkspaceSummary {
  id: string;
  name: string;
  role: Role;
  created_at?: number;
}

export interface Account {
  id: string;
  email: string;
  name: string;
}

interface WorkspaceState {
  workspaceId: string;
  role: Role;
  workspaces: WorkspaceSummary[];
  account?: Account;
  /** Path prefix of this workspace's pages, e.g. `/w/<id>`. */
  base: string;
}

const Ctx = createContext<WorkspaceState | null>(null);

export function useWorkspaces() {
  return useQuery({
    queryKey: ["workspaces"],
    queryFn: async () => (await api<{ data: WorkspaceSummary[] }>("GET", "/console/api/workspaces")).data,
  });
}

export function useAccount() {
  return useQuery({ queryKey: ["account"], queryFn: () => api<Account>("GET", "/console/api/account") });
}

export function WorkspaceProvider({ workspaceId, children }: { workspaceId: string; children: (state: WorkspaceState | null, loading: boolean, error: unknown) => ReactNode }) {
  const workspaces = useWorkspaces();
  const account = useAccount();
  const current = workspaces.data?.find((w) => w.id === workspaceId);
  const state: WorkspaceState | null = current
    ? { workspaceId, role: current.role, workspaces: workspaces.data ?? [], account: account.data, base: `/w/${workspaceId}` }
    : null;
  return <Ctx.Provider value={state}>{children(state, workspaces.isLoading, workspaces.error)}</Ctx.Provider>;
}

export function useWorkspace(): WorkspaceState {
  const state = useContext(Ctx);
  if (!state) throw new Error("useWorkspace outside a workspace page");
  return state;
}

/** Headers for the knowledge API (/v1/datasets), which takes a console token plus the workspace. */
export function kbHeaders(workspaceId: string): Record<string, string> {
  return { "X-Workspace-Id": workspaceId };
}
