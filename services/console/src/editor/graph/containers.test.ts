import { describe, expect, it } from 'vitest'
import type { Graph } from '../dsl/types'
import { freeChildren, settleDrop, withExtents } from './containers'
import { toFlow, toGraph } from './convert'

// start and an iteration (its start node and one code node inside), a code node and the end
// outside. The iteration is drawn at (300, 0), 564 x 200 (around its children).
function graph(): Graph {
  return {
    version: '1',
    nodes: [
      { id: 'start', data: { type: 'start', title: 'Start', variables: [] }, position: { x: 0, y: 0 } },
      { id: 'it', data: { type: 'iteration', title: 'Each', start_node_id: 'it_start', iterator_selector: ['sys', 'files'],
        output_selector: ['inner', 'result'] }, position: { x: 300, y: 0 } },
      { id: 'it_start', data: { type: 'iteration-start', title: '' }, parent_id: 'it', position: { x: 24, y: 56 } },
      { id: 'inner', data: { type: 'code', title: 'Inner', code: 'def main():\n    return {}' }, parent_id: 'it',
        position: { x: 300, y: 56 } },
      { id: 'c', data: { type: 'code', title: 'Outer', code: 'def main():\n    return {}' }, position: { x: 0, y: 400 } },
      { id: 'end', data: { type: 'end', title: 'End', outputs: [] }, position: { x: 600, y: 400 } },
    ],
    edges: [
      { id: 'e1', source: 'start', target: 'it' },
      { id: 'e2', source: 'it_start', target: 'inner' },
      { id: 'e3', source: 'start', target: 'c' },
      { id: 'e4', source: 'c', target: 'end' },
    ],
  }
}

const drop = (g: Graph, id: string, x: number, y: number) => {
  const f = toFlow(g)
  const r = settleDrop(f.nodes, f.edges, new Map([[id, { x, y }]]))
  return { ...r, graph: toGraph(r.nodes, r.edges, f.meta) }
}

describe('dragging nodes on the canvas into and out of containers', () => {
  it('a node dropped on an iteration becomes its child, placed relative to it, and loses edges to the outside', () => {
    const { nodes, moves, graph: g } = drop(graph(), 'c', 350, 60) // its centre (470, 88) is inside
    expect(moves).toEqual([{ id: 'c', parentId: 'it' }])
    const c = nodes.find((n) => n.id === 'c')!
    expect(c.parentId).toBe('it')
    expect(c.extent).toBe('parent')
    expect(c.position).toEqual({ x: 50, y: 60 }) // the same place on the canvas
    expect(nodes.findIndex((n) => n.id === 'it')).toBeLessThan(nodes.findIndex((n) => n.id === 'c'))
    expect(g.edges.map((e) => e.id)).toEqual(['e1', 'e2']) // start -> c and c -> end crossed the border
    // The DSL keeps it, and reading the DSL back puts it inside again.
    const back = g.nodes.find((n) => n.id === 'c')!
    expect(back.parent_id).toBe('it')
    expect(back.position).toEqual({ x: 50, y: 60 })
    const again = toFlow(g).nodes.find((n) => n.id === 'c')!
    expect([again.parentId, again.extent]).toEqual(['it', 'parent'])
  })

  it('a child dragged out of its container is top-level again, on the same spot', () => {
    const { nodes, moves, graph: g } = drop(graph(), 'inner', -300, 350) // relative to it: (0, 350) on the canvas
    expect(moves).toEqual([{ id: 'inner', parentId: null }])
    const inner = nodes.find((n) => n.id === 'inner')!
    expect(inner.parentId).toBeUndefined()
    expect(inner.extent).toBeUndefined()
    expect(inner.position).toEqual({ x: 0, y: 350 })
    expect(g.edges.map((e) => e.id)).toEqual(['e1', 'e3', 'e4']) // it_start -> inner is gone
    const back = g.nodes.find((n) => n.id === 'inner')!
    expect('parent_id' in back).toBe(false)
    expect(back.position).toEqual({ x: 0, y: 350 })
  })

  it('a child moved inside its container stays, its edges kept, pulled back past the top-left edge', () => {
    const { moves, nodes, edges } = drop(graph(), 'inner', -20, 40)
    expect(moves).toEqual([])
    const inner = nodes.find((n) => n.id === 'inner')!
    expect([inner.parentId, inner.extent, inner.position]).toEqual(['it', 'parent', { x: 0, y: 40 }])
    expect(edges.map((e) => e.id)).toEqual(['e1', 'e2', 'e3', 'e4'])
  })

  it('start nodes and containers never change container', () => {
    expect(drop(graph(), 'it_start', -300, 400).moves).toEqual([])
    expect(drop(graph(), 'start', 400, 40).moves).toEqual([])
    const g = graph()
    g.nodes.push({ id: 'lp', data: { type: 'loop', title: 'Loop', start_node_id: '' }, position: { x: 0, y: 800 } })
    expect(drop(g, 'lp', 350, 20).moves).toEqual([])
  })

  it('lifts a pressed child\'s extent for the drag and puts it back afterwards', () => {
    const { nodes } = toFlow(graph())
    const free = freeChildren(nodes, new Set(['inner', 'c']))
    expect(free.find((n) => n.id === 'inner')!.extent).toBeUndefined()
    expect(free.find((n) => n.id === 'it_start')!.extent).toBe('parent') // not pressed
    expect(freeChildren(nodes, new Set(['c']))).toBe(nodes) // nothing to lift: same array
    expect(withExtents(free).find((n) => n.id === 'inner')!.extent).toBe('parent')
    expect(withExtents(nodes)).toBe(nodes)
  })
})
