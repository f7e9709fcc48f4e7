import { describe, expect, it } from 'vitest'
import { NODE_SPECS } from '../dsl/nodeTypes'
import { NODE_TYPES } from '../dsl/types'
import { everyNodeType } from '../testing/fixtures'
import { fromFlowEdge, toFlow, toGraph } from './convert'

describe('DSL <-> canvas', () => {
  it('the fixture holds every node type the orchestrator runs', () => {
    const types = new Set(everyNodeType().nodes.map((n) => n.data.type))
    expect([...types].sort()).toEqual([...NODE_TYPES].sort())
    expect(Object.keys(NODE_SPECS).sort()).toEqual([...NODE_TYPES].sort())
  })

  it('round-trips every node type without loss, unknown keys included', () => {
    const graph = everyNodeType()
    const { nodes, edges, meta } = toFlow(graph)
    expect(toGraph(nodes, edges, meta)).toEqual(graph)
  })

  it('draws iteration and loop as containers holding their children', () => {
    const { nodes } = toFlow(everyNodeType())
    const it = nodes.find((n) => n.id === 'it')!
    expect(it.type).toBe('container')
    expect(Number(it.style?.width)).toBeGreaterThanOrEqual(300 + 240)
    const child = nodes.find((n) => n.id === 'it_llm')!
    expect(child.parentId).toBe('it')
    expect(child.extent).toBe('parent')
    expect(nodes.findIndex((n) => n.id === 'it')).toBeLessThan(nodes.findIndex((n) => n.id === 'it_llm'))
    expect(nodes.find((n) => n.id === 'lp_end')!.parentId).toBe('lp')
  })

  it('puts a parent before its children even when the document lists it later', () => {
    const graph = everyNodeType()
    const it = graph.nodes.findIndex((n) => n.id === 'it')
    const [container] = graph.nodes.splice(it, 1)
    graph.nodes.push(container)
    const { nodes } = toFlow(graph)
    expect(nodes.findIndex((n) => n.id === 'it')).toBeLessThan(nodes.findIndex((n) => n.id === 'it_start'))
  })

  it('gives if-else and classifier edges their case / class handles', () => {
    const { edges } = toFlow(everyNodeType())
    expect(edges.filter((e) => e.source === 'if1').map((e) => e.sourceHandle).sort()).toEqual(['false', 'maybe', 'yes'])
    expect(edges.filter((e) => e.source === 'qc').map((e) => e.sourceHandle).sort()).toEqual(['c1', 'c2'])
    expect(edges.find((e) => e.id === 'e3f')!.sourceHandle).toBe('fail-branch')
  })

  it('reads moves and new parents back from the canvas', () => {
    const { nodes, edges, meta } = toFlow(everyNodeType())
    const moved = nodes.map((n) => (n.id === 'tt' ? { ...n, position: { x: 12.34, y: -5 } } : n))
    const back = toGraph(moved, edges, meta)
    expect(back.nodes.find((n) => n.id === 'tt')!.position).toEqual({ x: 12.3, y: -5 })
  })

  it('writes a new edge with its handles and keeps an id-less edge id-less', () => {
    expect(fromFlowEdge({ id: 'x', source: 'a', target: 'b', sourceHandle: 'yes', targetHandle: 'target',
      data: { edge: { id: 'x', source: 'a', target: 'b', source_handle: 'yes' } } }))
      .toEqual({ id: 'x', source: 'a', target: 'b', source_handle: 'yes' })
    expect(fromFlowEdge({ id: 'a-source-b', source: 'a', target: 'b', sourceHandle: 'source', targetHandle: 'target',
      data: { edge: { source: 'a', target: 'b' } } })).toEqual({ source: 'a', target: 'b' })
  })
})
