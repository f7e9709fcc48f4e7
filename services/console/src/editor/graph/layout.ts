/**
 * Auto-layout: a small layered (Sugiyama-style) layout, left to right. Each node's column is
 * its longest path from a root; within a column nodes are ordered by the mean row of their
 * predecessors (one barycentre sweep), which keeps branches untangled for the graphs people
 * draw. Containers are laid out inside first, so their size is known when their own scope is.
 */
import type { DslNode, Graph } from '../dsl/types'
import { containerSizes, CONTAINER_PAD, isContainer, nodeHeight, NODE_WIDTH } from './convert'

const GAP_X = 80
const GAP_Y = 40

function layoutScope(nodes: DslNode[], graph: Graph, size: (n: DslNode) => { width: number; height: number },
  origin: { x: number; y: number }): Map<string, { x: number; y: number }> {
  const ids = new Set(nodes.map((n) => n.id))
  const edges = graph.edges.filter((e) => ids.has(e.source) && ids.has(e.target))
  const preds = new Map<string, string[]>(nodes.map((n) => [n.id, []]))
  const succs = new Map<string, string[]>(nodes.map((n) => [n.id, []]))
  for (const e of edges) {
    preds.get(e.target)!.push(e.source)
    succs.get(e.source)!.push(e.target)
  }
  // Longest-path layering in topological order (cycles are invalid; any left are cut).
  const layer = new Map<string, number>()
  const indeg = new Map(nodes.map((n) => [n.id, preds.get(n.id)!.length]))
  const queue = nodes.filter((n) => indeg.get(n.id) === 0).map((n) => n.id)
  while (queue.length) {
    const id = queue.shift()!
    if (!layer.has(id)) layer.set(id, 0)
    for (const t of succs.get(id)!) {
      layer.set(t, Math.max(layer.get(t) ?? 0, layer.get(id)! + 1))
      indeg.set(t, indeg.get(t)! - 1)
      if (indeg.get(t) === 0) queue.push(t)
    }
  }
  for (const n of nodes) if (!layer.has(n.id)) layer.set(n.id, 0)

  const columns: string[][] = []
  for (const n of nodes) (columns[layer.get(n.id)!] ??= []).push(n.id)
  const row = new Map<string, number>()
  columns.forEach((col, ci) => {
    if (ci > 0) {
      const bary = (id: string) => {
        const ps = preds.get(id)!.filter((p) => row.has(p))
        return ps.length ? ps.reduce((s, p) => s + row.get(p)!, 0) / ps.length : Number.MAX_SAFE_INTEGER
      }
      col.sort((a, b) => bary(a) - bary(b))
    }
    col.forEach((id, i) => row.set(id, i))
  })

  const byId = new Map(nodes.map((n) => [n.id, n]))
  const out = new Map<string, { x: number; y: number }>()
  let x = origin.x
  const heights = columns.map((col) => col.reduce((h, id) => h + size(byId.get(id)!).height + GAP_Y, -GAP_Y))
  const tallest = Math.max(0, ...heights)
  columns.forEach((col, ci) => {
    let y = origin.y + (tallest - heights[ci]) / 2
    let width = 0
    for (const id of col) {
      const s = size(byId.get(id)!)
      out.set(id, { x, y })
      y += s.height + GAP_Y
      width = Math.max(width, s.width)
    }
    x += width + GAP_X
  })
  return out
}

/** The graph with every node placed (positions of children relative to their container). */
export function autoLayout(graph: Graph): Graph {
  const nodes = graph.nodes.map((n) => ({ ...n }))
  const byId = new Map(nodes.map((n) => [n.id, n]))
  const depth = (n: DslNode) => {
    let d = 0
    for (let p = n.parent_id; p && d < 64; p = byId.get(p)?.parent_id) d++
    return d
  }
  // Innermost scopes first: a container's size depends on its laid-out children.
  const scopes = [...new Set(nodes.map((n) => n.parent_id ?? ''))]
    .sort((a, b) => (b ? depth(byId.get(b)!) + 1 : 0) - (a ? depth(byId.get(a)!) + 1 : 0))
  for (const scope of scopes) {
    const members = nodes.filter((n) => (n.parent_id ?? '') === scope)
    const sizes = containerSizes(nodes)
    const size = (n: DslNode) => (isContainer(n) ? sizes.get(n.id)! : { width: NODE_WIDTH, height: nodeHeight(n) })
    const origin = scope ? { x: CONTAINER_PAD.left, y: CONTAINER_PAD.top } : { x: 0, y: 0 }
    for (const [id, pos] of layoutScope(members, graph, size, origin)) byId.get(id)!.position = pos
  }
  return { ...graph, nodes }
}

/** True when some node has no position yet (graphs made through the API). */
export function needsLayout(graph: Graph): boolean {
  return graph.nodes.some((n) => !n.position || typeof n.position.x !== 'number')
}
