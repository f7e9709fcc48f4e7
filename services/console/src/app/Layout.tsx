/**
 * The frame around every workspace page: a sidebar with the workspace switcher, the sections the
 * member's role may open, and the account's sign-out; the page in the main area.
 */
import { useQueryClient } from "@tanstack/react-query";
import { NavLink, Outlet, useNavigate, useParams } from "react-router-dom";
import { signOut } from "./auth";
import { can, type Perm } from "./rbac";
import { ErrorMessage, Loading } from "./ui";
import { useWorkspace, WorkspaceProvider } from "./workspace";

const SECTIONS: { path: string; label: string; perm: Perm }[] = [
  { path: "apps", label: "Apps", perm: "apps.read" },
  { path: "knowledge", label: "Knowledge", perm: "datasets.read" },
  { path: "tools", label: "Tools", perm: "apps.read" },
  { path: "members", label: "Members", perm: "members.read" },
  { path: "audit", label: "Audit log", perm: "audit.read" },
  { path: "settings", label: "Settings", perm: "workspace.manage" },
];

export function WorkspaceLayout() {
  const { ws = "" } = useParams();
  return (
    <WorkspaceProvider workspaceId={ws}>
      {(state, loading, error) =>
        state ? (
          <Frame />
        ) : (
          <main className="centered">
            {loading ? <Loading /> : error ? <ErrorMessage error={error} /> : <NotAMember />}
          </main>
        )
      }
    </WorkspaceProvider>
  );
}

function NotAMember() {
  return (
    <div className="card">
      <h1>Workspace not found</h1>
      <p>You are not a member of this workspace.</p>
      <a href="/">Go to your workspaces</a>
    </div>
  );
}

function Frame() {
  const { workspaceId, workspaces, role, account, base } = useWorkspace();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  return (
    <div className="shell">
      <nav className="sidebar" aria-label="Console">
        <div className="brand">Loom</div>
        <label className="sr-only" htmlFor="workspace-switcher">
          Workspace
        </label>
        <select
          id="workspace-switcher"
          value={workspaceId}
          onChange={(e) => navigate(`/w/${e.target.value}/apps`)}
        >
          {workspaces.map((w) => (
            <option key={w.id} value={w.id}>
              {w.name}
            </option>
          ))}
        </select>
        <p className="muted role-badge">Role: {role}</p>
        <ul>
          {SECTIONS.filter((s) => can(role, s.perm)).map((s) => (
            <li key={s.path}>
              <NavLink to={`${base}/${s.path}`}>{s.label}</NavLink>
            </li>
          ))}
        </ul>
        <div className="account">
          <span title={account?.email}>{account?.name ?? account?.email ?? ""}</span>
          <button
            type="button"
            className="ghost"
            onClick={async () => {
              await signOut();
              queryClient.clear();
              navigate("/login");
            }}
          >
            Sign out
          </button>
        </div>
      </nav>
      <main className="content">
        <Outlet />
      </main>
    </div>
  );
}
