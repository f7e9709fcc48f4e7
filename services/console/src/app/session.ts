/**
 * The signed-in session: the gateway's access and refresh tokens, kept in localStorage so a
 * reload stays signed in. Only api.ts reads the tokens; pages see `isSignedIn` and `onChange`.
 */

export interface Tokens {
  access_token: string;
  refresh_token: string;
  expires_at?: number | string;
  account_id?: string;
}

const KEY = "loom.session";
const listeners = new Set<() => void>();

export function loadTokens(): Tokens | null {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Tokens) : null;
  } catch {
    return null;
  }
}

export function saveTokens(tokens: Tokens | null): void {
  if (tokens) localStorage.setItem(KEY, JSON.stringify(tokens));
  else localStorage.removeItem(KEY);
  listeners.forEach((fn) => fn());
}

export function isSignedIn(): boolean {
  return loadTokens() !== null;
}

/** Subscribe to sign-in and sign-out; returns the unsubscribe function. */
export function onSessionChange(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
