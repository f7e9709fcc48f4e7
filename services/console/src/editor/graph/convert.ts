/**
 * The canvas is a view of the DSL: `toFlow` turns a graph into React Flow nodes and edges,
 * `toGraph` turns them back. Each flow node carries its whole DSL node (unknown keys included)
 * in `data.node`, and each flow edge its DSL edge in `data.edge`, so nothing the editor does
 * not understand is lost; only `position` and `parent_id` (React Flow's `parentId`) are read
 * back from the canvas. Positions of nodes inside an iteration or loop are relative to it, as
 * React Flow (and Dify's export) keep them.
 */
import type { Edge as FlowEdge, Node as FlowNode } from '@xyflow/react'
import { spec } from '../dsl/nodeTypes'
import type { DslEdge, DslNode, Graph, Position } from '../dsl/types'

export interface NodeViewData extends Record<string, unknown> {
  node: DslNode
}

export interface EdgeViewData extends Record<string, unknown> {
  edge: DslEdge
}

export type LoomNode = FlowNode<NodeViewData>
export type LoomEdge = FlowEdge<EdgeViewData>

/** Everything of a graph besides nodes and edges (version, variables, unknown keys). */
export type GraphMeta = Omit<Graph, 'nodes' | 'edges'>

export const NODE_WIDTH = 240
export const CONTAINER_PAD = { left: 24, top: 56, right: 24, bottom: 24 }
export const CONTAINER_MIN = { width: 420, height: 200 }

/** The height a node is drawn with (its handle rows decide it). */
export function nodeHeight(node: DslNode): number {
  const handles = spec(node.data.type)?.handles(node.data).length ?? 1
  return 56 + Math.max(0, handles - 1) * 26 + (node.data.error_strategy === 'fail-branch' ? 26 : 0)
}

export const isContainer = (node: DslNode): boolean => Boolean(spec(node.data.type)?.container)

/** Parents before their children (React Flow's rule), otherwise in document order. */
export function parentsFirst(nodes: DslNode[]): DslNode[] {
  const byId = new Map(nodes.map((n) => [n.id, n]))
  const out: DslNode[] = []
  const placed = new Set<string>()
  const place = (n: DslNode, depth = 0) => {
    if (placed.has(n.id)) return
    const parent = n.parent_id ? byId.get(n.parent_id) : undefined
    if (parent && depth < 64) place(parent, depth + 1)
    placed.add(n.id)
    out.push(n)
  }
  nodes.forEach((n) => place(n))
  return out
}

/** A generated edge id, stable for the same connection. */
export function edgeId(e: Pick<DslEdge, 'source' | 'target' | 'source_handle'>): string {
  return `${e.source}-${e.source_handle ?? 'source'}-${e.target}`
}

/** Sizes of containers: around their children, never below the minimum. */
export function containerSizes(nodes: DslNode[]): Map<string, { width: number; height: number }> {
  const sizes = new Map<string, { width: number; height: number }>()
  // Deepest containers first, so a container inside a container is measured before its parent.
  const depth = (n: DslNode): number => {
    let d = 0
    let cur = n
    const byId = new Map(nodes.map((x) => [x.id, x]))
    while (cur.parent_id && d < 64) {
      const p = byId.get(cur.parent_id)
      if (!p) break
      cur = p
      d++
    }
    return d
  }
  const containers = nodes.filter(isContainer).sort((a, b) => depth(b) - depth(a))
  for (const c of containers) {
    let width = CONTAINER_MIN.width
    let height = CONTAINER_MIN.height
    for (const child of nodes) {
      if (child.parent_id !== c.id) continue
      const p = child.position ?? { x: 0, y: 0 }
      const own = sizes.get(child.id)
      width = Math.max(width, p.x + (own?.width ?? NODE_WIDTH) + CONTAINER_PAD.right)
      height = Math.max(height, p.y + (own?.height ?? nodeHeight(child)) + CONTAINER_PAD.bottom)
    }
    sizes.set(c.id, { width, height })
  }
  return sizes
}

export function toFlowNode(node: DslNode, size?: { width: number; height: number }): LoomNode {
  const container = isContainer(node)
  const out: LoomNode = {
    id: node.id,
    type: container ? 'container' : 'loom',
    position: { ...(node.position ?? { x: 0, y: 0 }) },
    data: { node },
    // Sizes before the first measure, so fitView and visible-only rendering see every node.
    initialWidth: container ? size?.width ?? CONTAINER_MIN.width : NODE_WIDTH,
    initialHeight: container ? size?.height ?? CONTAINER_MIN.height : nodeHeight(node),
  }
  // The start node and a container's start node are part of the graph's shape: never deleted alone.
  if (['start', 'iteration-start', 'loop-start'].includes(node.data.type)) out.deletable = false
  if (node.parent_id) {
    out.parentId = node.parent_id
    out.extent = 'parent'
  }
  if (container && size) {
    out.style = { width: size.width, height: size.height }
    out.zIndex = 0
  }
  return out
}

/** React Flow draws an edge between children of a container at their height (above the
 *  container, level with the children, which come later in the page and so stay on top: pressing
 *  a child never grabs an edge curving under it). No zIndex of its own. */
export function toFlowEdge(edge: DslEdge): LoomEdge {
  return {
    id: edge.id || edgeId(edge),
    source: edge.source,
    target: edge.target,
    sourceHandle: edge.source_handle ?? 'source',
    targetHandle: edge.target_handle ?? 'target',
    data: { edge },
  }
}

export function toFlow(graph: Graph): { nodes: LoomNode[]; edges: LoomEdge[]; meta: GraphMeta } {
  const { nodes, edges, ...meta } = graph
  const ordered = parentsFirst(nodes ?? [])
  const sizes = containerSizes(ordered)
  return {
    nodes: ordered.map((n) => toFlowNode(n, sizes.get(n.id))),
    edges: (edges ?? []).map((e) => toFlowEdge(e)),
    meta,
  }
}

function roundPosition(p: { x: number; y: number }): Position {
  return { x: Math.round(p.x * 10) / 10, y: Math.round(p.y * 10) / 10 }
}

/** The DSL node a flow node stands for, with the canvas's position and parent. */
export function fromFlowNode(n: LoomNode): DslNode {
  const node: DslNode = { ...n.data.node, id: n.id, position: roundPosition(n.position) }
  if (n.parentId) node.parent_id = n.parentId
  else delete node.parent_id
  return node
}

export function fromFlowEdge(e: LoomEdge): DslEdge {
  const raw: DslEdge = e.data?.edge ?? { source: e.source, target: e.target }
  const out: DslEdge = { ...raw, source: e.source, target: e.target }
  // Write handles back the way the document had them: absent stays absent when it is the default.
  const sh = e.sourceHandle ?? 'source'
  if ('source_handle' in raw || sh !== 'source') out.source_handle = sh
  const th = e.targetHandle ?? 'target'
  if ('target_handle' in raw || th !== 'target') out.target_handle = th
  if ('id' in raw || e.id !== edgeId(out)) out.id = raw.id || e.id
  return out
}

export function toGraph(nodes: LoomNode[], edges: LoomEdge[], meta: GraphMeta): Graph {
  return { ...meta, nodes: nodes.map(fromFlowNode), edges: edges.map(fromFlowEdge) }
}
