/**
 * Undo/redo over whole graph snapshots (graphs are small: a 200-node graph is ~100 kB of
 * plain objects, shared structurally between snapshots). Edits that come in a burst with the
 * same `tag` (typing in one field, dragging one node) coalesce into one step.
 */
export class History<T> {
  private past: T[] = []
  private future: T[] = []
  private lastTag: string | null = null
  private lastAt = 0

  constructor(private limit = 100, private coalesceMs = 1000) {}

  /** Record `before` (the state an edit is about to replace). */
  push(before: T, tag: string | null = null, now = Date.now()): void {
    if (tag !== null && tag === this.lastTag && now - this.lastAt < this.coalesceMs) {
      this.lastAt = now
      return
    }
    this.past.push(before)
    if (this.past.length > this.limit) this.past.shift()
    this.future = []
    this.lastTag = tag
    this.lastAt = now
  }

  undo(current: T): T | undefined {
    const prev = this.past.pop()
    if (prev === undefined) return undefined
    this.future.push(current)
    this.lastTag = null
    return prev
  }

  redo(current: T): T | undefined {
    const next = this.future.pop()
    if (next === undefined) return undefined
    this.past.push(current)
    this.lastTag = null
    return next
  }

  get canUndo(): boolean {
    return this.past.length > 0
  }

  get canRedo(): boolean {
    return this.future.length > 0
  }

  clear(): void {
    this.past = []
    this.future = []
    this.lastTag = null
  }
}
