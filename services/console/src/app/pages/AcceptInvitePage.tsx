/** `/invite?token=…`: an invited person sets a name and password and joins the workspace. */
import { useState, type FormEvent } from "react";
import { useNavigate, useSearchParams } from "react-router-dom";
import { api } from "../api";
import { signIn } from "../auth";
import type { Tokens } from "../session";
import { ErrorMessage, Field } from "../ui";
import type { Schema } from "../schemas";

export function AcceptInvitePage() {
  const [params] = useSearchParams();
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const navigate = useNavigate();
  const token = params.get("token") ?? "";

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const res = await api<Tokens & { workspace_id: string }>("POST", "/console/api/invitations/accept", {
        token,
        name: name || null,
        password,
      } satisfies Schema<"AcceptBody">);
      signIn(res);
      navigate(`/w/${res.workspace_id}/apps`, { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="centered">
      <form className="card narrow" onSubmit={submit} aria-labelledby="invite-title">
        <h1 id="invite-title">Join a Loom workspace</h1>
        {!token && <div className="error" role="alert">This link has no invitation token.</div>}
        <Field label="Your name" hint="Leave empty if you already have an account.">
          {(id) => <input id={id} value={name} maxLength={100} onChange={(e) => setName(e.target.value)} autoFocus />}
        </Field>
        <Field label="Password" hint="At least 8 characters (your existing password if you have an account).">
          {(id) => <input id={id} type="password" autoComplete="new-password" required minLength={8} value={password} onChange={(e) => setPassword(e.target.value)} />}
        </Field>
        <ErrorMessage error={error} />
        <button type="submit" disabled={busy || !token}>
          {busy ? "Joining…" : "Join workspace"}
        </button>
      </form>
    </main>
  );
}
