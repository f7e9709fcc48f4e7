/**
 * Small shared pieces every page uses: loading, empty and error states (the API's own message),
 * a labelled field, a form that runs one request, a button that asks before it acts, tabs with
 * arrow-key navigation, a modal dialog and a copy button.
 */
import { useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from "react";
import { ApiError } from "./api";

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <p className="muted" role="status" aria-live="polite">
      {label}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

/** A failed request, shown with the gateway's message (never a stack trace). */
export function ErrorMessage({ error }: { error: unknown }) {
  if (!error) return null;
  const message =
    error instanceof ApiError
      ? error.message
      : error instanceof Error
        ? error.message
        : String(error);
  const status = error instanceof ApiError && error.status ? ` (${error.status})` : "";
  return (
    <div className="error" role="alert">
      {message}
      {status}
    </div>
  );
}

export function Field({ label, children, hint }: { label: string; children: (id: string) => ReactNode; hint?: string }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children(id)}
      {hint && <small className="muted">{hint}</small>}
    </div>
  );
}

/** A dialog's form that runs one mutation: its fields, the request's error, and a submit button
 * that says while the request runs (`busyLabel`). */
export function MutationForm(props: {
  mutation: { mutate: () => void; error: unknown; isPending: boolean };
  label: string;
  busyLabel: string;
  disabled?: boolean;
  children: ReactNode;
}) {
  const { mutation } = props;
  return (
    <form
      className="stack"
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        mutation.mutate();
      }}
    >
      {props.children}
      <ErrorMessage error={mutation.error} />
      <div className="row end">
        <button type="submit" disabled={props.disabled || mutation.isPending}>{mutation.isPending ? props.busyLabel : props.label}</button>
      </div>
    </form>
  );
}

/** A destructive action's button: it acts only once the user confirms `question`. */
export function ConfirmButton({ question, onConfirm, className = "ghost danger", disabled, title, children }: {
  question: string;
  onConfirm: () => void;
  className?: string;
  disabled?: boolean;
  title?: string;
  children: ReactNode;
}) {
  return (
    <button
      type="button"
      className={className}
      disabled={disabled}
      title={title}
      onClick={() => {
        if (confirm(question)) onConfirm();
      }}
    >
      {children}
    </button>
  );
}

export interface Tab {
  id: string;
  label: string;
}

/** WAI-ARIA tabs: arrow keys move between tabs, the selected one is in the tab order. */
export function Tabs({ tabs, current, onSelect }: { tabs: Tab[]; current: string; onSelect: (id: string) => void }) {
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  const index = Math.max(0, tabs.findIndex((t) => t.id === current));
  const move = (delta: number) => {
    const next = (index + delta + tabs.length) % tabs.length;
    onSelect(tabs[next].id);
    refs.current[next]?.focus();
  };
  return (
    <div role="tablist" className="tabs">
      {tabs.map((t, i) => (
        <button
          key={t.id}
          ref={(el) => {
            refs.current[i] = el;
          }}
          role="tab"
          id={`tab-${t.id}`}
          aria-selected={t.id === current}
          aria-controls={`panel-${t.id}`}
          tabIndex={t.id === current ? 0 : -1}
          onClick={() => onSelect(t.id)}
          onKeyDown={(e) => {
            if (e.key === "ArrowRight") move(1);
            else if (e.key === "ArrowLeft") move(-1);
          }}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

/** A native <dialog>: focus stays inside, Escape closes it. */
export function Modal({ title, open, onClose, children }: { title: string; open: boolean; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog ref={ref} onClose={onClose} aria-label={title} className="modal">
      <header>
        <h2>{title}</h2>
        <button type="button" className="ghost" aria-label="Close" onClick={onClose}>
          ×
        </button>
      </header>
      {open && children}
    </dialog>
  );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      className="ghost"
      onClick={() => {
        void navigator.clipboard?.writeText(text).then(() => {
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        });
      }}
    >
      {done ? "Copied" : label}
    </button>
  );
}

export function formatTime(ts: number | string | null | undefined): string {
  if (ts === null || ts === undefined || ts === "") return "–";
  const date = typeof ts === "number" ? new Date(ts * 1000) : new Date(ts);
  return Number.isNaN(date.getTime()) ? String(ts) : date.toLocaleString();
}
