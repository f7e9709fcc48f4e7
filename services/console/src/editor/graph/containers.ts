/**
 * Moving nodes that are already on the canvas into and out of iteration and loop containers.
 * A node dropped with its centre inside a container becomes its child (`parentId`, kept inside
 * by `extent: 'parent'`, position relative to it); a child dropped outside its container
 * becomes top-level again (or the child of the container it landed in). Edges that would then
 * join a node inside a container to one outside are dropped: a container's body is its own
 * sub-graph (the orchestrator runs it per item), wired from the container's start node.
 */
import { CONTAINER_MIN, NODE_WIDTH, isContainer, type LoomEdge, type LoomNode } from './convert'

type Point = { x: number; y: number }

/** A node's position on the canvas, adding up its parents' (positions of children are relative). */
export function absolutePosition(nodes: LoomNode[], id: string): Point {
  const byId = new Map(nodes.map((n) => [n.id, n]))
  let x = 0
  let y = 0
  let cur = byId.get(id)
  for (let depth = 0; cur && depth < 64; depth++) {
    x += cur.position.x
    y += cur.position.y
    cur = cur.parentId ? byId.get(cur.parentId) : undefined
  }
  return { x, y }
}

/** The drawn size: measured once React Flow has rendered it, else the size it was given. */
export function nodeSize(n: LoomNode): { width: number; height: number } {
  const container = n.type === 'container'
  const width = n.measured?.width ?? n.width ?? (n.style?.width as number | undefined) ?? n.initialWidth
    ?? (container ? CONTAINER_MIN.width : NODE_WIDTH)
  const height = n.measured?.height ?? n.height ?? (n.style?.height as number | undefined) ?? n.initialHeight
    ?? (container ? CONTAINER_MIN.height : 60)
  return { width, height }
}

/** Nodes that may move between containers: not containers, not the start nodes (the graph's
 *  and each container's own, which belong where they are). */
export function movable(n: LoomNode): boolean {
  const type = n.data.node.data.type
  return !isContainer(n.data.node) && !['start', 'iteration-start', 'loop-start'].includes(type)
}

/** The container a node dropped now belongs in: the topmost one under its centre, or null. */
export function dropParent(nodes: LoomNode[], id: string): string | null {
  const node = nodes.find((n) => n.id === id)
  if (!node) return null
  const at = absolutePosition(nodes, id)
  const size = nodeSize(node)
  const cx = at.x + size.width / 2
  const cy = at.y + size.height / 2
  let found: string | null = null
  for (const c of nodes) { // later in the array is drawn above: the last hit wins
    if (c.id === id || c.type !== 'container') continue
    const p = absolutePosition(nodes, c.id)
    const s = nodeSize(c)
    if (cx >= p.x && cx <= p.x + s.width && cy >= p.y && cy <= p.y + s.height) found = c.id
  }
  return found
}

export interface Move {
  id: string
  parentId: string | null
}

/** Which of the dropped nodes change container (those whose container is dragged with them
 *  move with it and stay put). */
export function movesAfterDrop(nodes: LoomNode[], dropped: string[]): Move[] {
  const moving = new Set(dropped)
  const moves: Move[] = []
  for (const id of dropped) {
    const n = nodes.find((x) => x.id === id)
    if (!n || !movable(n) || (n.parentId && moving.has(n.parentId))) continue
    const parentId = dropParent(nodes, id)
    if (parentId !== (n.parentId ?? null)) moves.push({ id, parentId })
  }
  return moves
}

/** The nodes with the moves applied: same place on the canvas, position now relative to the
 *  new parent, `extent: 'parent'` inside a container, parents still before their children
 *  (React Flow's rule). */
export function applyMoves(nodes: LoomNode[], moves: Move[]): LoomNode[] {
  if (!moves.length) return nodes
  const to = new Map(moves.map((m) => [m.id, m.parentId]))
  const moved = nodes.map((n) => {
    if (!to.has(n.id)) return n
    const parentId = to.get(n.id) ?? null
    const abs = absolutePosition(nodes, n.id)
    const origin = parentId ? absolutePosition(nodes, parentId) : { x: 0, y: 0 }
    const { parentId: _old, extent: _extent, ...rest } = n
    const position = { x: Math.max(0, abs.x - origin.x), y: Math.max(0, abs.y - origin.y) }
    return parentId ? { ...rest, position, parentId, extent: 'parent' as const } : { ...rest, position }
  })
  // A node that became a child must come after its container.
  const index = new Map(moved.map((n, i) => [n.id, i]))
  const late = moved.filter((n) => n.parentId && to.has(n.id) && index.get(n.parentId)! > index.get(n.id)!)
  if (!late.length) return moved
  const lateIds = new Set(late.map((n) => n.id))
  return [...moved.filter((n) => !lateIds.has(n.id)), ...late]
}

/** The nodes with `extent` lifted from these children, so the mouse can carry them out of
 *  their container (React Flow reads a node's extent when its drag starts). */
export function freeChildren(nodes: LoomNode[], ids: Set<string>): LoomNode[] {
  if (!nodes.some((n) => ids.has(n.id) && n.parentId && n.extent && movable(n))) return nodes
  return nodes.map((n) => {
    if (!ids.has(n.id) || !n.parentId || !n.extent || !movable(n)) return n
    const { extent: _extent, ...rest } = n
    return rest
  })
}

/** Every child kept inside its container again (after a drag, an undo or a click). */
export function withExtents(nodes: LoomNode[]): LoomNode[] {
  if (!nodes.some((n) => n.parentId && !n.extent)) return nodes
  return nodes.map((n) => (n.parentId && !n.extent ? { ...n, extent: 'parent' as const } : n))
}

/** Children among `ids` pulled back to the container's top-left edge if dropped past it (the
 *  container grows to the right and down around its children, never left or up). */
export function clampChildren(nodes: LoomNode[], ids: Set<string>): LoomNode[] {
  const out = (n: LoomNode) => ids.has(n.id) && n.parentId && (n.position.x < 0 || n.position.y < 0)
  if (!nodes.some(out)) return nodes
  return nodes.map((n) => (out(n) ? { ...n, position: { x: Math.max(0, n.position.x), y: Math.max(0, n.position.y) } } : n))
}

/** Which dropped nodes change container, `positions` being where the drag left them
 *  (relative to their parents as before). */
export function planDrop(nodes: LoomNode[], positions: Map<string, Point>): Move[] {
  const placed = nodes.map((n) => (positions.has(n.id) ? { ...n, position: positions.get(n.id)! } : n))
  return movesAfterDrop(placed, [...positions.keys()])
}

/** The nodes after a drop: moved between containers, children kept inside theirs. */
export function placeNodes(nodes: LoomNode[], moves: Move[], dropped: Set<string>): LoomNode[] {
  return withExtents(clampChildren(applyMoves(nodes, moves), dropped))
}

/** Edges left after nodes changed container: those with both ends in the same container (or
 *  both top-level); none crosses a container's border. */
export function scopeEdges(edges: LoomEdge[], nodes: LoomNode[]): LoomEdge[] {
  const parent = new Map(nodes.map((n) => [n.id, n.parentId ?? null]))
  const kept = edges.filter((e) => parent.get(e.source) === parent.get(e.target))
  return kept.length === edges.length ? edges : kept
}

/** A whole drop (what the editor does in two state updates): nodes dropped with their centre
 *  in another container become its children, the rest stay in theirs, and edges that would
 *  cross a container's border go. */
export function settleDrop(nodes: LoomNode[], edges: LoomEdge[], positions: Map<string, Point>):
{ nodes: LoomNode[]; edges: LoomEdge[]; moves: Move[] } {
  const placed = nodes.map((n) => (positions.has(n.id) ? { ...n, position: positions.get(n.id)! } : n))
  const moves = planDrop(nodes, positions)
  const next = placeNodes(placed, moves, new Set(positions.keys()))
  return { nodes: next, edges: moves.length ? scopeEdges(edges, next) : edges, moves }
}
