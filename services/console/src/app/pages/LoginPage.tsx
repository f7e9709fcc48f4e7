/** Sign in with email and password; the tokens are kept (session.ts) and refreshed (api.ts). */
import { useState, type FormEvent } from "react";
import { Navigate, useLocation, useNavigate } from "react-router-dom";
import { api } from "../api";
import { signIn, useSignedIn } from "../auth";
import type { Tokens } from "../session";
import { ErrorMessage, Field, Loading } from "../ui";
import { useSetupStatus } from "./HomePage";
import type { Schema } from "../schemas";

export function LoginPage() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const navigate = useNavigate();
  const location = useLocation();
  const signedIn = useSignedIn();
  const setup = useSetupStatus();
  if (setup.data && setup.data.step !== "finished") return <Navigate to="/setup" replace />;
  if (signedIn && !busy) return <Navigate to="/" replace />;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      signIn(await api<Tokens>("POST", "/console/api/login", { email, password } satisfies Schema<"LoginBody">));
      const from = (location.state as { from?: string } | null)?.from;
      navigate(from && from !== "/login" ? from : "/", { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="centered">
      <form className="card narrow" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Sign in to Loom</h1>
        <Field label="Email">
          {(id) => <input id={id} type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} autoFocus />}
        </Field>
        <Field label="Password">
          {(id) => <input id={id} type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />}
        </Field>
        <ErrorMessage error={error} />
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {setup.isLoading && <Loading label="Checking the installation…" />}
      </form>
    </main>
  );
}
