/**
 * Sign-in state for the router: `useSignedIn()` re-renders on sign-in/out, `RequireAuth` sends
 * a signed-out visitor to /login (remembering where they were going), `signIn`/`signOut` keep
 * the gateway's tokens (see session.ts; api.ts refreshes them).
 */
import { useSyncExternalStore, type ReactNode } from "react";
import { Navigate, useLocation } from "react-router-dom";
import { api } from "./api";
import { isSignedIn, onSessionChange, saveTokens, type Tokens } from "./session";

export function useSignedIn(): boolean {
  return useSyncExternalStore(onSessionChange, isSignedIn);
}

export function signIn(tokens: Tokens): void {
  saveTokens(tokens);
}

export async function signOut(): Promise<void> {
  try {
    await api("POST", "/console/api/logout");
  } catch {
    /* the session may already be gone; sign out locally anyway */
  }
  saveTokens(null);
}

export function RequireAuth({ children }: { children: ReactNode }) {
  const signedIn = useSignedIn();
  const location = useLocation();
  if (!signedIn) return <Navigate to="/login" replace state={{ from: location.pathname }} />;
  return <>{children}</>;
}
