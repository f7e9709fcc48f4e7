/**
 * Copy and paste of nodes. A copied container takes its children along; edges between copied
 * nodes come too. Pasting gives every node a fresh id and rewrites what pointed at the old ids
 * (parent_id, edges, `{{#old.var#}}` references and selectors inside the copied nodes' data,
 * a container's start_node_id), so the pasted group works on its own.
 */
import type { DslEdge, DslNode, Graph } from '../dsl/types'
import { edgeId } from './convert'
import { newNodeId } from './ids'

export interface Clip {
  kind: 'loom-nodes'
  nodes: DslNode[]
  edges: DslEdge[]
}

export function copy(graph: Graph, ids: string[]): Clip {
  const picked = new Set(ids)
  // Children of copied containers come along (and theirs, for nested containers).
  let grew = true
  while (grew) {
    grew = false
    for (const n of graph.nodes) {
      if (n.parent_id && picked.has(n.parent_id) && !picked.has(n.id)) {
        picked.add(n.id)
        grew = true
      }
    }
  }
  const nodes = graph.nodes.filter((n) => picked.has(n.id) && n.data.type !== 'start')
  const kept = new Set(nodes.map((n) => n.id))
  return {
    kind: 'loom-nodes',
    nodes: structuredClone(nodes),
    edges: structuredClone(graph.edges.filter((e) => kept.has(e.source) && kept.has(e.target))),
  }
}

function rewrite(value: unknown, ids: Map<string, string>): unknown {
  if (typeof value === 'string') {
    return value.replace(/\{\{#([A-Za-z0-9_-]+)\./g, (all, head: string) =>
      ids.has(head) ? `{{#${ids.get(head)}.` : all)
  }
  if (Array.isArray(value)) {
    const isSelector = value.length >= 2 && value.every((p) => typeof p === 'string')
    if (isSelector && ids.has(value[0] as string)) return [ids.get(value[0] as string), ...value.slice(1)]
    return value.map((v) => rewrite(v, ids))
  }
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rewrite(v, ids)]))
  }
  return value
}

/** The graph with the clip pasted; top-level pasted nodes land `offset` away from the originals
 *  (or inside `intoParent`, when pasting into a container). */
export function paste(graph: Graph, clip: Clip, offset = { x: 40, y: 40 }, intoParent?: string | null
): { graph: Graph; pasted: string[] } {
  const taken = new Set(graph.nodes.map((n) => n.id))
  const ids = new Map<string, string>()
  for (const n of clip.nodes) {
    const id = newNodeId(n.data.type, taken)
    taken.add(id)
    ids.set(n.id, id)
  }
  const nodes = clip.nodes.map((n) => {
    const copyNode = { ...n, id: ids.get(n.id)!, data: rewrite(n.data, ids) as DslNode['data'] }
    const parentCopied = n.parent_id && ids.has(n.parent_id)
    if (parentCopied) copyNode.parent_id = ids.get(n.parent_id!)
    else if (intoParent !== undefined) {
      if (intoParent) copyNode.parent_id = intoParent
      else delete copyNode.parent_id
    }
    const p = n.position ?? { x: 0, y: 0 }
    copyNode.position = parentCopied ? { ...p } : { x: p.x + offset.x, y: p.y + offset.y }
    if (typeof copyNode.data.start_node_id === 'string' && ids.has(copyNode.data.start_node_id)) {
      copyNode.data = { ...copyNode.data, start_node_id: ids.get(copyNode.data.start_node_id) }
    }
    return copyNode
  })
  const edges = clip.edges.map((e) => {
    const out: DslEdge = { ...e, source: ids.get(e.source)!, target: ids.get(e.target)! }
    out.id = edgeId(out)
    return out
  })
  return { graph: { ...graph, nodes: [...graph.nodes, ...nodes], edges: [...graph.edges, ...edges] },
    pasted: nodes.map((n) => n.id) }
}

export function isClip(value: unknown): value is Clip {
  return Boolean(value && typeof value === 'object' && (value as Clip).kind === 'loom-nodes'
    && Array.isArray((value as Clip).nodes) && Array.isArray((value as Clip).edges))
}
