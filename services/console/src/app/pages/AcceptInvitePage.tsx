/** `/invite?token=…`: an invited person sets a name and password and joins the workspace. */
import { useState } from "react";
import { useNavigate, useSearchParams } from "react-router-dom";
import { api } from "../api";
import type { Tokens } from "../session";
import { Field } from "../ui";
import { SignInCard, useSignInSubmit } from "./SignInForm";
import type { Schema } from "../schemas";

export function AcceptInvitePage() {
  const [params] = useSearchParams();
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const navigate = useNavigate();
  const token = params.get("token") ?? "";
  const { busy, error, submit } = useSignInSubmit(
    () =>
      api<Tokens & { workspace_id: string }>("POST", "/console/api/invitations/accept", {
        token,
        name: name || null,
        password,
      } satisfies Schema<"AcceptBody">),
    (res) => navigate(`/w/${res.workspace_id}/apps`, { replace: true }),
  );

  return (
    <SignInCard
      title="Join a Loom workspace"
      titleId="invite-title"
      onSubmit={submit}
      error={error}
      busy={busy}
      disabled={!token}
      label="Join workspace"
      busyLabel="Joining…"
    >
      {!token && <div className="error" role="alert">This link has no invitation token.</div>}
      <Field label="Your name" hint="Leave empty if you already have an account.">
        {(id) => <input id={id} value={name} maxLength={100} onChange={(e) => setName(e.target.value)} autoFocus />}
      </Field>
      <Field label="Password" hint="At least 8 characters (your existing password if you have an account).">
        {(id) => <input id={id} type="password" autoComplete="new-password" required minLength={8} value={password} onChange={(e) => setPassword(e.target.value)} />}
      </Field>
    </SignInCard>
  );
}
