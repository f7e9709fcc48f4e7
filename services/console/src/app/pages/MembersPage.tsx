/**
 * Members and invitations. Everyone may read the member list; owners and admins (`members.manage`)
 * invite, change roles and remove. The owner's row is fixed and only the owner may touch an admin,
 * as the gateway enforces: those controls are disabled with the reason.
 */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api";
import { ASSIGNABLE_ROLES, can } from "../rbac";
import { ConfirmButton, CopyButton, Empty, ErrorMessage, Field, Loading, formatTime } from "../ui";
import { useWorkspace } from "../workspace";
import type { Schema } from "../schemas";

interface Member {
  id: string;
  email: string;
  name: string;
  role: string;
  created_at: number;
}

interface Invitation {
  id: string;
  email: string;
  role: string;
  token?: string;
  expires_at: number;
  accepted?: boolean;
}

export function MembersPage() {
  const { workspaceId, role, account } = useWorkspace();
  const base = `/console/api/workspaces/${workspaceId}`;
  const manage = can(role, "members.manage");
  const queryClient = useQueryClient();
  const members = useQuery({ queryKey: ["members", workspaceId], queryFn: () => api<{ data: Member[] }>("GET", `${base}/members`) });
  const invitations = useQuery({
    queryKey: ["invitations", workspaceId],
    queryFn: () => api<{ data: Invitation[] }>("GET", `${base}/invitations`),
    enabled: manage,
  });
  const [email, setEmail] = useState("");
  const [inviteRole, setInviteRole] = useState("normal");
  const [invited, setInvited] = useState<Invitation | null>(null);
  const invite = useMutation({
    mutationFn: () => api<Invitation>("POST", `${base}/invitations`, { email, role: inviteRole } satisfies Schema<"InviteBody">),
    onSuccess: (inv) => {
      setInvited(inv);
      setEmail("");
      void queryClient.invalidateQueries({ queryKey: ["invitations", workspaceId] });
    },
  });
  const setRole = useMutation({
    mutationFn: ({ id, newRole }: { id: string; newRole: string }) => api("PATCH", `${base}/members/${id}`, { role: newRole } satisfies Schema<"RoleBody">),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ["members", workspaceId] }),
  });
  const remove = useMutation({
    mutationFn: (id: string) => api("DELETE", `${base}/members/${id}`),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ["members", workspaceId] }),
  });
  // Mirrors the gateway: the owner is fixed; only the owner changes or removes an admin.
  const lockedReason = (m: Member): string | null => {
    if (m.id === account?.id) return "This is you.";
    if (m.role === "owner") return "The owner's role cannot be changed.";
    if (m.role === "admin" && role !== "owner") return "Only the owner may change an admin.";
    return null;
  };
  const inviteLink = invited?.token ? `${window.location.origin}/invite?token=${encodeURIComponent(invited.token)}` : "";

  return (
    <section aria-labelledby="members-title" className="stack">
      <header className="page-header">
        <h1 id="members-title">Members</h1>
      </header>
      {members.isLoading ? (
        <Loading label="Loading members…" />
      ) : members.error ? (
        <ErrorMessage error={members.error} />
      ) : !members.data?.data.length ? (
        <Empty>No members.</Empty>
      ) : (
        <table aria-label="Members">
          <thead>
            <tr>
              <th>Name</th>
              <th>Email</th>
              <th>Role</th>
              <th>Joined</th>
              {manage && <th aria-label="Actions" />}
            </tr>
          </thead>
          <tbody>
            {members.data.data.map((m) => {
              const locked = lockedReason(m);
              return (
                <tr key={m.id}>
                  <td>{m.name}</td>
                  <td>{m.email}</td>
                  <td>
                    {manage ? (
                      <>
                        <label className="sr-only" htmlFor={`role-${m.id}`}>Role of {m.email}</label>
                        <select
                          id={`role-${m.id}`}
                          value={m.role}
                          disabled={!!locked || setRole.isPending}
                          title={locked ?? undefined}
                          onChange={(e) => setRole.mutate({ id: m.id, newRole: e.target.value })}
                        >
                          {m.role === "owner" && <option value="owner">owner</option>}
                          {ASSIGNABLE_ROLES.map((r) => (
                            <option key={r} value={r}>{r}</option>
                          ))}
                        </select>
                      </>
                    ) : (
                      m.role
                    )}
                  </td>
                  <td>{formatTime(m.created_at)}</td>
                  {manage && (
                    <td>
                      <ConfirmButton question={`Remove ${m.email} from this workspace?`} onConfirm={() => remove.mutate(m.id)} disabled={!!locked} title={locked ?? undefined}>Remove</ConfirmButton>
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <ErrorMessage error={setRole.error ?? remove.error} />

      {manage && (
        <section className="subcard" aria-labelledby="invite-title">
          <h2 id="invite-title">Invite a member</h2>
          <form
            className="row"
            onSubmit={(e: FormEvent) => {
              e.preventDefault();
              invite.mutate();
            }}
          >
            <Field label="Email">{(id) => <input id={id} type="email" required maxLength={254} value={email} onChange={(e) => setEmail(e.target.value)} />}</Field>
            <Field label="Role">
              {(id) => (
                <select id={id} value={inviteRole} onChange={(e) => setInviteRole(e.target.value)}>
                  {ASSIGNABLE_ROLES.map((r) => (
                    <option key={r} value={r}>{r}</option>
                  ))}
                </select>
              )}
            </Field>
            <button type="submit" disabled={invite.isPending}>{invite.isPending ? "Inviting…" : "Invite"}</button>
          </form>
          <ErrorMessage error={invite.error} />
          {inviteLink && (
            <div className="notice" role="status">
              <p>Send this link to {invited?.email}; it is shown only now:</p>
              <p>
                <code data-testid="invite-link">{inviteLink}</code> <CopyButton text={inviteLink} />
              </p>
            </div>
          )}
          {invitations.data?.data.length ? (
            <table aria-label="Invitations">
              <thead>
                <tr><th>Email</th><th>Role</th><th>Expires</th><th>State</th></tr>
              </thead>
              <tbody>
                {invitations.data.data.map((inv) => (
                  <tr key={inv.id}>
                    <td>{inv.email}</td>
                    <td>{inv.role}</td>
                    <td>{formatTime(inv.expires_at)}</td>
                    <td>{inv.accepted ? "accepted" : "pending"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          <ErrorMessage error={invitations.error} />
        </section>
      )}
    </section>
  );
}
