/**
 * What the pages that end in a session share (sign in, accept an invitation, the setup's admin
 * step): `useSignInSubmit` sends the request, keeps its busy and error state and signs in with the
 * tokens it answers; `SignInCard` is the centred card form of the sign-in and invitation pages.
 */
import { useState, type FormEvent, type ReactNode } from "react";
import { signIn } from "../auth";
import type { Tokens } from "../session";
import { ErrorMessage } from "../ui";

export function useSignInSubmit<T extends Tokens>(request: () => Promise<T>, then: (answer: T) => void) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const answer = await request();
      signIn(answer);
      then(answer);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, submit };
}

export function SignInCard(props: {
  title: string;
  titleId: string;
  onSubmit: (e: FormEvent) => void;
  error: unknown;
  busy: boolean;
  /** The submit button's label, and its label while the request runs. */
  label: string;
  busyLabel: string;
  disabled?: boolean;
  children: ReactNode;
  footer?: ReactNode;
}) {
  return (
    <main className="centered">
      <form className="card narrow" onSubmit={props.onSubmit} aria-labelledby={props.titleId}>
        <h1 id={props.titleId}>{props.title}</h1>
        {props.children}
        <ErrorMessage error={props.error} />
        <button type="submit" disabled={props.busy || props.disabled}>
          {props.busy ? props.busyLabel : props.label}
        </button>
        {props.footer}
      </form>
    </main>
  );
}
