/** Sign in with email and password; the tokens are kept (session.ts) and refreshed (api.ts). */
import { useState } from "react";
import { Navigate, useLocation, useNavigate } from "react-router-dom";
import { api } from "../api";
import { useSignedIn } from "../auth";
import type { Tokens } from "../session";
import { Field, Loading } from "../ui";
import { useSetupStatus } from "./HomePage";
import { SignInCard, useSignInSubmit } from "./SignInForm";
import type { Schema } from "../schemas";

export function LoginPage() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const navigate = useNavigate();
  const location = useLocation();
  const signedIn = useSignedIn();
  const setup = useSetupStatus();
  const { busy, error, submit } = useSignInSubmit(
    () => api<Tokens>("POST", "/console/api/login", { email, password } satisfies Schema<"LoginBody">),
    () => {
      const from = (location.state as { from?: string } | null)?.from;
      navigate(from && from !== "/login" ? from : "/", { replace: true });
    },
  );
  if (setup.data && setup.data.step !== "finished") return <Navigate to="/setup" replace />;
  if (signedIn && !busy) return <Navigate to="/" replace />;

  return (
    <SignInCard
      title="Sign in to Loom"
      titleId="login-title"
      onSubmit={submit}
      error={error}
      busy={busy}
      label="Sign in"
      busyLabel="Signing in…"
      footer={setup.isLoading && <Loading label="Checking the installation…" />}
    >
      <Field label="Email">
        {(id) => <input id={id} type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} autoFocus />}
      </Field>
      <Field label="Password">
        {(id) => <input id={id} type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />}
      </Field>
    </SignInCard>
  );
}
