/**
 * Saving the draft with a conflict check. The gateway's `PUT .../draft` overwrites whatever is
 * stored (it has no version or ETag), so before each save the editor reads the stored draft
 * and compares it with the last one it loaded or saved: a difference means another editor
 * saved meanwhile, and the user decides (overwrite, or load theirs). The compare uses a
 * key-sorted JSON text, since Postgres' jsonb does not keep key order.
 */
import type { AppDoc } from './dsl/types'

export type Api = <T>(method: 'GET' | 'PUT' | 'POST', path: string, body?: unknown) => Promise<T>

export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value ?? null)
}

export class DraftConflict extends Error {
  constructor(readonly theirs: AppDoc) {
    super('The draft was changed elsewhere since this editor loaded or saved it.')
    this.name = 'DraftConflict'
  }
}

export class DraftStore {
  /** The stored draft as this editor last saw it (stable JSON). */
  private seen: string

  constructor(private api: Api, private base: string, loaded: AppDoc) {
    this.seen = stableJson(loaded)
  }

  static path(workspaceId: string, appId: string) {
    return `/console/api/workspaces/${encodeURIComponent(workspaceId)}/apps/${encodeURIComponent(appId)}`
  }

  /** Save `doc`; throws DraftConflict if someone else saved since, ApiError if it is invalid. */
  async save(doc: AppDoc, force = false): Promise<AppDoc> {
    if (!force) {
      const { dsl: stored } = await this.api<{ dsl: AppDoc }>('GET', `${this.base}/draft`)
      if (stableJson(stored) !== this.seen) throw new DraftConflict(stored)
    }
    const { dsl: saved } = await this.api<{ dsl: AppDoc }>('PUT', `${this.base}/draft`, { dsl: doc })
    this.seen = stableJson(saved)
    return saved
  }

  /** Take `doc` (e.g. the other editor's draft) as the one this editor has seen. */
  adopt(doc: AppDoc): void {
    this.seen = stableJson(doc)
  }

  /** "Load theirs": the draft stored now, taken as seen. Not the one a conflict found: another
   * save may have landed since (an early autosave of the other editor raised the conflict). */
  async takeStored(): Promise<AppDoc> {
    const { dsl: stored } = await this.api<{ dsl: AppDoc }>('GET', `${this.base}/draft`)
    this.adopt(stored)
    return stored
  }
}
