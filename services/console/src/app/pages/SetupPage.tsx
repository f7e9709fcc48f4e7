/**
 * The first-run wizard: (1) the admin account and first workspace (POST /console/api/setup, which
 * the gateway refuses once done), then the workspace's (2) model endpoints, (3) default models,
 * (4) file storage and (5) audit log, each the same form as on the Settings page, each skippable.
 *
 * After step 1 the installation counts as set up; the wizard remembers (sessionStorage) that this
 * tab is mid-way, so a reload continues instead of bouncing to login.
 */
import { useState } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { Navigate, useNavigate } from "react-router-dom";
import { api } from "../api";
import { useSignedIn } from "../auth";
import type { Tokens } from "../session";
import { AuditSettings } from "../settings/AuditSettings";
import { DefaultModels } from "../settings/DefaultModels";
import { ModelEndpoints } from "../settings/ModelEndpoints";
import { StorageSettings } from "../settings/StorageSettings";
import { ErrorMessage, Field, Loading } from "../ui";
import { useSetupStatus } from "./HomePage";
import { useSignInSubmit } from "./SignInForm";
import type { Schema } from "../schemas";

const WIZARD_KEY = "loom.setup-wizard";
const STEPS = ["Admin account", "Model endpoints", "Default models", "File storage", "Audit log"];

interface WizardState {
  workspaceId: string;
  step: number;
}

function loadWizard(): WizardState | null {
  try {
    return JSON.parse(sessionStorage.getItem(WIZARD_KEY) ?? "null") as WizardState | null;
  } catch {
    return null;
  }
}

export function SetupPage() {
  const setup = useSetupStatus();
  const signedIn = useSignedIn();
  const [wizard, setWizardState] = useState<WizardState | null>(loadWizard);
  const navigate = useNavigate();
  const queryClient = useQueryClient();

  const setWizard = (next: WizardState | null) => {
    if (next) sessionStorage.setItem(WIZARD_KEY, JSON.stringify(next));
    else sessionStorage.removeItem(WIZARD_KEY);
    setWizardState(next);
  };

  if (setup.isLoading) return <main className="centered"><Loading /></main>;
  if (setup.error) return <main className="centered"><ErrorMessage error={setup.error} /></main>;
  // Set up already and not mid-way in this tab: the wizard is closed, `/` leads to login.
  if (setup.data?.step === "finished" && !(wizard && signedIn)) return <Navigate to="/login" replace />;

  const step = wizard?.step ?? 0;
  const next = () => {
    if (!wizard) return;
    if (step + 1 >= STEPS.length) {
      setWizard(null);
      void queryClient.invalidateQueries();
      navigate(`/w/${wizard.workspaceId}/apps`, { replace: true });
    } else setWizard({ ...wizard, step: step + 1 });
  };

  return (
    <main className="centered">
      <section className="card wizard" aria-labelledby="setup-title">
        <h1 id="setup-title">Set up Loom</h1>
        <ol className="steps" aria-label="Setup steps">
          {STEPS.map((label, i) => (
            <li key={label} aria-current={i === step ? "step" : undefined} className={i < step ? "done" : i === step ? "current" : ""}>
              {label}
            </li>
          ))}
        </ol>
        {step === 0 || !wizard ? (
          <AdminStep
            onDone={(workspaceId) => {
              setWizard({ workspaceId, step: 1 });
              void queryClient.invalidateQueries({ queryKey: ["setup"] });
            }}
          />
        ) : (
          <div className="wizard-step">
            <h2>{STEPS[step]}</h2>
            {step === 1 && <ModelEndpoints workspaceId={wizard.workspaceId} />}
            {step === 2 && <DefaultModels workspaceId={wizard.workspaceId} />}
            {step === 3 && <StorageSettings workspaceId={wizard.workspaceId} />}
            {step === 4 && <AuditSettings workspaceId={wizard.workspaceId} canManage />}
            <div className="row end">
              <button type="button" onClick={next}>
                {step + 1 >= STEPS.length ? "Finish and open the console" : "Continue"}
              </button>
            </div>
          </div>
        )}
      </section>
    </main>
  );
}

function AdminStep({ onDone }: { onDone: (workspaceId: string) => void }) {
  const [form, setForm] = useState({ email: "", name: "", password: "", workspace_name: "My workspace" });
  const set = (key: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement>) => setForm({ ...form, [key]: e.target.value });
  const { busy, error, submit } = useSignInSubmit(
    () => api<Tokens & { workspace: { id: string } }>("POST", "/console/api/setup", form satisfies Schema<"SetupBody">),
    (res) => onDone(res.workspace.id),
  );

  return (
    <form onSubmit={submit} className="wizard-step">
      <h2>Admin account and first workspace</h2>
      <Field label="Admin email">
        {(id) => <input id={id} type="email" required maxLength={254} autoComplete="username" value={form.email} onChange={set("email")} autoFocus />}
      </Field>
      <Field label="Admin name">
        {(id) => <input id={id} required maxLength={100} value={form.name} onChange={set("name")} />}
      </Field>
      <Field label="Password" hint="At least 8 characters.">
        {(id) => <input id={id} type="password" required minLength={8} maxLength={256} autoComplete="new-password" value={form.password} onChange={set("password")} />}
      </Field>
      <Field label="Workspace name">
        {(id) => <input id={id} required maxLength={100} value={form.workspace_name} onChange={set("workspace_name")} />}
      </Field>
      <ErrorMessage error={error} />
      <div className="row end">
        <button type="submit" disabled={busy}>
          {busy ? "Creating…" : "Create admin and workspace"}
        </button>
      </div>
    </form>
  );
}
