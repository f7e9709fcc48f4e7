import { describe, expect, it } from 'vitest'
import type { AppDoc } from './dsl/types'
import { DraftConflict, DraftStore, stableJson, type Api } from './drafts'
import { everyNodeType } from './testing/fixtures'

/** A gateway holding one draft; PUT returns what it stored (re-ordered keys, as jsonb does). */
function gateway(initial: AppDoc) {
  const box = { stored: structuredClone(initial), puts: 0 }
  const reorder = (v: unknown): unknown => Array.isArray(v) ? v.map(reorder)
    : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reorder(x)])) : v
  const api: Api = async <T,>(method: string, _path: string, body?: unknown) => {
    if (method === 'PUT') {
      box.puts++
      box.stored = reorder((body as { dsl: AppDoc }).dsl) as AppDoc
    }
    return { dsl: structuredClone(box.stored) } as T
  }
  return { box, api }
}

const doc = (): AppDoc => ({ version: 'loom/1', kind: 'app', app: { name: 'a', mode: 'chatflow' },
  workflow: { graph: everyNodeType() } })

describe('draft autosave', () => {
  it('compares documents whatever their key order', () => {
    expect(stableJson({ b: 1, a: [{ y: 2, x: 1 }] })).toBe(stableJson({ a: [{ x: 1, y: 2 }], b: 1 }))
  })

  it('saves again and again while nobody else saves', async () => {
    const { box, api } = gateway(doc())
    const mine = new DraftStore(api, '/x', structuredClone(box.stored))
    const next = doc()
    next.app.name = 'b'
    await mine.save(next)
    next.app.name = 'c'
    await mine.save(next)
    expect(box.puts).toBe(2)
    expect(box.stored.app.name).toBe('c')
  })

  it('warns the second editor instead of overwriting the first one\'s save', async () => {
    const { box, api } = gateway(doc())
    const alice = new DraftStore(api, '/x', structuredClone(box.stored))
    const bob = new DraftStore(api, '/x', structuredClone(box.stored))
    const a = doc()
    a.app.name = 'alice'
    await alice.save(a)
    const b = doc()
    b.app.name = 'bob'
    const err = await bob.save(b).catch((e) => e)
    expect(err).toBeInstanceOf(DraftConflict)
    expect((err as DraftConflict).theirs.app.name).toBe('alice')
    expect(box.stored.app.name).toBe('alice')
    await bob.save(b, true) // "keep mine"
    expect(box.stored.app.name).toBe('bob')
    const err2 = await alice.save(a).catch((e) => e)
    expect(err2).toBeInstanceOf(DraftConflict)
    alice.adopt((err2 as DraftConflict).theirs) // "load theirs"
    await alice.save(a)
    expect(box.stored.app.name).toBe('alice')
  })

  it('loads the newest stored draft, not the one the conflict saw', async () => {
    const { box, api } = gateway(doc())
    const alice = new DraftStore(api, '/x', structuredClone(box.stored))
    const bob = new DraftStore(api, '/x', structuredClone(box.stored))
    const a = doc()
    a.app.name = 'alice 1'
    await alice.save(a)
    const err = await bob.save(doc()).catch((e) => e)
    expect((err as DraftConflict).theirs.app.name).toBe('alice 1')
    a.app.name = 'alice 2' // alice saves again before bob decides
    await alice.save(a)
    expect((await bob.takeStored()).app.name).toBe('alice 2')
    const b = doc()
    b.app.name = 'bob'
    await bob.save(b) // no conflict: bob has seen the newest draft
    expect(box.stored.app.name).toBe('bob')
  })
})
