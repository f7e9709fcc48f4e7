/**
 * Which controls a member may see: the gateway's own permission matrix (rbac.gen.json is
 * generated from loom_gateway.domain.rbac by `npm run gen:api`), so a hidden button and a 403
 * from the API always agree. The API refuses anyway; this only spares users dead controls.
 */
import matrix from "./rbac.gen.json";

export type Role = "owner" | "admin" | "editor" | "normal" | "dataset_operator";
export type Perm =
  | "workspace.manage"
  | "workspace.delete"
  | "members.read"
  | "members.manage"
  | "apps.read"
  | "apps.write"
  | "app_keys.manage"
  | "dataset_keys.manage"
  | "datasets.read"
  | "datasets.write"
  | "runs.read"
  | "audit.read"
  | "audit.manage";

const table = matrix.permissions as Record<string, string[]>;

export function can(role: string | undefined, perm: Perm): boolean {
  return !!role && (table[perm] ?? []).includes(role);
}

/** Roles an owner or admin may hand out (one owner per workspace). */
export const ASSIGNABLE_ROLES: Role[] = ["admin", "editor", "normal", "dataset_operator"];
