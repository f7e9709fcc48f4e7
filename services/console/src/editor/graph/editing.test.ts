import { describe, expect, it } from 'vitest'
import { chain, everyNodeType } from '../testing/fixtures'
import { copy, paste } from './clipboard'
import { History } from './history'
import { newNodeId } from './ids'
import { autoLayout, needsLayout } from './layout'
import { localProblems } from './validate'

describe('copy and paste', () => {
  it('pastes a container with its children under fresh ids, references rewritten', () => {
    const g = everyNodeType()
    const clip = copy(g, ['it'])
    expect(clip.nodes.map((n) => n.id)).toEqual(['it', 'it_start', 'it_llm'])
    expect(clip.edges.map((e) => e.id)).toEqual(['e16'])
    const { graph, pasted } = paste(g, clip)
    expect(pasted).toEqual(['iteration', 'iteration_start', 'llm_2'])
    const it2 = graph.nodes.find((n) => n.id === 'iteration')!
    expect(it2.data.output_selector).toEqual(['llm_2', 'text'])
    expect(it2.data.iterator_selector).toEqual(['kr', 'result']) // outside the clip: unchanged
    expect(it2.data.start_node_id).toBe('iteration_start')
    expect(it2.position).toEqual({ x: 3640, y: 40 })
    const llm2 = graph.nodes.find((n) => n.id === 'llm_2')!
    expect(llm2.parent_id).toBe('iteration')
    expect(llm2.position).toEqual({ x: 300, y: 56 }) // relative to its (copied) parent: unchanged
    expect((llm2.data.prompt_template as { text: string }[])[0].text).toBe('{{#iteration.item#}} #{{#iteration.index#}} {{#start.q#}}')
    expect(graph.edges.at(-1)).toEqual({ id: 'iteration_start-source-llm_2', source: 'iteration_start', target: 'llm_2' })
    expect(g.nodes).toHaveLength(everyNodeType().nodes.length) // the original is untouched
  })

  it('never copies the start node', () => {
    expect(copy(everyNodeType(), ['start', 'kr']).nodes.map((n) => n.id)).toEqual(['kr'])
  })

  it('makes readable ids that are never taken', () => {
    expect(newNodeId('if-else', ['start'])).toBe('if_else')
    expect(newNodeId('llm', ['llm', 'llm_2'])).toBe('llm_3')
  })
})

describe('auto-layout', () => {
  it('places every node, left to right along the edges, children inside their container', () => {
    const g = everyNodeType()
    g.nodes.forEach((n) => delete n.position)
    expect(needsLayout(g)).toBe(true)
    const laid = autoLayout(g)
    expect(needsLayout(laid)).toBe(false)
    const pos = (id: string) => laid.nodes.find((n) => n.id === id)!.position!
    for (const e of laid.edges) expect(pos(e.source).x).toBeLessThan(pos(e.target).x)
    expect(pos('it_start').x).toBeGreaterThanOrEqual(24)
    expect(pos('it_start').y).toBeGreaterThanOrEqual(56)
    // Branches of the if-else land in distinct rows of the same column band.
    expect(new Set(['qc', 'pe'].map((id) => pos(id).x)).size).toBe(2)
    expect(localProblems(laid, 'chatflow')).toEqual([])
  })

  it('lays out a 200-node chain without overlaps', () => {
    const laid = autoLayout(chain(200))
    const xs = laid.nodes.map((n) => n.position!.x)
    expect(new Set(xs).size).toBe(200)
  })
})

describe('undo / redo', () => {
  it('undoes and redoes whole steps, coalescing a burst of edits to one field', () => {
    const h = new History<number>(100, 1000)
    h.push(0, null, 0) // 0 -> 1
    h.push(1, 'title', 10) // 1 -> 2 (typing)
    h.push(2, 'title', 20) // 2 -> 3 (same burst: no new step)
    expect(h.undo(3)).toBe(1)
    expect(h.undo(1)).toBe(0)
    expect(h.undo(0)).toBeUndefined()
    expect(h.redo(0)).toBe(1)
    expect(h.redo(1)).toBe(3)
    expect(h.canRedo).toBe(false)
    h.undo(3)
    h.push(1, null, 5000) // a new edit drops the redo branch
    expect(h.canRedo).toBe(false)
  })

  it('keeps at most `limit` steps', () => {
    const h = new History<number>(3)
    for (let i = 0; i < 10; i++) h.push(i, null, i * 10_000)
    expect([h.undo(10), h.undo(9), h.undo(8), h.undo(7)]).toEqual([9, 8, 7, undefined])
  })
})
