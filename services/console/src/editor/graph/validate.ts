/**
 * Problems of a graph, each tied to a node (and field) or an edge so the canvas can mark the
 * offending node: the gateway's DSL errors (`PUT .../draft` answers 400 with
 * `message: "invalid workflow graph: ...\n  node 'llm1' (llm): data.model.name: Field required"`,
 * one line per problem, see `loom_common.dsl.graph`) parsed back, plus the checks the editor
 * makes before saving (unconnected nodes, missing required fields, unreachable variables).
 */
import { CONTAINER_START, spec } from '../dsl/nodeTypes'
import type { AppMode, DslNode, Graph, Selector } from '../dsl/types'
import { isReachable, reachableVars, references } from './scope'

export interface Problem {
  nodeId?: string
  edgeId?: string
  /** The node data field, without the `data.` prefix (`model.name`, `cases.true.conditions.0`). */
  field?: string
  message: string
  /** `local` problems are found by the editor; `server` ones come from the gateway. */
  source: 'local' | 'server'
}

const NODE_LINE = /^node '([^']+)'(?: \(([^)]*)\))?: (.*)$/
const EDGE_LINE = /^edge '([^']+)': (.*)$/
const NODE_INDEX_LINE = /^nodes\.(\d+)(?:\.(\S+))?: (.*)$/
const FIELD_REST = /^([A-Za-z0-9_.#\-[\]]+|\(root\)): (.*)$/
const EDGE_IN_REST = /^edge '([^']+)' /

function normField(field: string): string {
  return field.startsWith('data.') ? field.slice(5) : field
}

function edgeRef(name: string, graph?: Graph): string {
  // The validator names an edge without an id by its index: "#3".
  if (name.startsWith('#') && graph) {
    const e = graph.edges[Number(name.slice(1))]
    if (e) return e.id || `${e.source}-${e.source_handle ?? 'source'}-${e.target}`
  }
  return name
}

/** The gateway's error message for an invalid graph, one problem per line. */
export function parseServerProblems(message: string, graph?: Graph): Problem[] {
  const out: Problem[] = []
  for (const raw of message.split('\n')) {
    let line = raw.trim()
    while (line.startsWith('invalid workflow graph:')) line = line.slice('invalid workflow graph:'.length).trim()
    if (!line) continue
    let m = NODE_LINE.exec(line)
    if (m) {
      const [, nodeId, , rest] = m
      const edge = EDGE_IN_REST.exec(rest)
      if (edge) {
        out.push({ nodeId, edgeId: edgeRef(edge[1], graph), message: rest, source: 'server' })
        continue
      }
      const f = FIELD_REST.exec(rest)
      out.push(f ? { nodeId, field: normField(f[1]), message: f[2], source: 'server' }
        : { nodeId, message: rest, source: 'server' })
      continue
    }
    m = EDGE_LINE.exec(line)
    if (m) {
      const edgeId = edgeRef(m[1], graph)
      const e = graph?.edges.find((x) => (x.id || `${x.source}-${x.source_handle ?? 'source'}-${x.target}`) === edgeId)
      out.push({ edgeId, nodeId: e?.source, message: m[2], source: 'server' })
      continue
    }
    m = NODE_INDEX_LINE.exec(line)
    if (m) {
      const node = graph?.nodes[Number(m[1])]
      out.push({ nodeId: node?.id, field: m[2] ? normField(m[2]) : undefined, message: m[3], source: 'server' })
      continue
    }
    out.push({ message: line, source: 'server' })
  }
  return out
}

/** Strings and selectors inside a node's data, with the field path they sit at. */
function walk(value: unknown, path: string, visit: (path: string, v: unknown) => void) {
  visit(path, value)
  if (Array.isArray(value)) value.forEach((v, i) => walk(v, path ? `${path}.${i}` : String(i), visit))
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k, visit)
  }
}

const SELECTOR_KEYS = /(^|\.)(\w*selector|query|value_selector)$|^variables\.\d+$|^variable$/

function isSelectorShape(v: unknown): v is Selector {
  return Array.isArray(v) && v.length >= 2 && v.every((p) => typeof p === 'string' && p !== '')
}

/** The `{{#..#}}` references and selectors a node reads, with their fields. */
export function readsOf(node: DslNode): { field: string; selector: Selector }[] {
  const out: { field: string; selector: Selector }[] = []
  walk(node.data, '', (path, v) => {
    if (typeof v === 'string') {
      for (const sel of references(v)) out.push({ field: path, selector: sel })
    } else if (isSelectorShape(v) && SELECTOR_KEYS.test(path)) {
      out.push({ field: path, selector: v })
    }
  })
  // Tool parameters and assigner values bound to a variable are selectors too.
  const params = node.data.tool_parameters as Record<string, { type?: string; value?: unknown }> | undefined
  for (const [k, p] of Object.entries(params ?? {})) {
    if (p?.type === 'variable' && isSelectorShape(p.value)) out.push({ field: `tool_parameters.${k}`, selector: p.value })
  }
  const items = node.data.items as { input_type?: string; value?: unknown }[] | undefined
  items?.forEach((it, i) => {
    if (it.input_type === 'variable' && isSelectorShape(it.value)) out.push({ field: `items.${i}.value`, selector: it.value })
  })
  return out
}

const ENTRY_TYPES = new Set(['start', 'iteration-start', 'loop-start'])

/** What the editor finds wrong before saving: the same node/field shape as the server's. */
export function localProblems(graph: Graph, mode: AppMode): Problem[] {
  const out: Problem[] = []
  const byId = new Map(graph.nodes.map((n) => [n.id, n]))
  const starts = graph.nodes.filter((n) => n.data.type === 'start' && !n.parent_id)
  if (starts.length !== 1) out.push({ message: `the graph needs exactly one Start node, it has ${starts.length}`, source: 'local' })

  const incoming = new Set(graph.edges.map((e) => e.target))
  const outgoing = new Map<string, string[]>()
  for (const e of graph.edges) outgoing.set(e.source, [...(outgoing.get(e.source) ?? []), e.target])

  // Reachable from an entry: Start at the top, a container's start node inside it.
  const reached = new Set<string>()
  const visit = (id: string) => {
    if (reached.has(id)) return
    reached.add(id)
    for (const t of outgoing.get(id) ?? []) visit(t)
  }
  graph.nodes.filter((n) => ENTRY_TYPES.has(n.data.type)).forEach((n) => visit(n.id))

  for (const node of graph.nodes) {
    const s = spec(node.data.type)
    if (!s) {
      out.push({ nodeId: node.id, field: 'type', message: `unknown node type '${node.data.type}'`, source: 'local' })
      continue
    }
    if (!ENTRY_TYPES.has(node.data.type) && !incoming.has(node.id)) {
      out.push({ nodeId: node.id, message: 'not connected: no edge leads into this node', source: 'local' })
    } else if (!reached.has(node.id)) {
      out.push({ nodeId: node.id, message: 'not reachable from the start node', source: 'local' })
    }
    const startType = CONTAINER_START[node.data.type]
    if (startType && !graph.nodes.some((c) => c.parent_id === node.id && c.data.type === startType)) {
      out.push({ nodeId: node.id, field: 'start_node_id', message: `needs its ${startType} node inside`, source: 'local' })
    }
    if (node.parent_id && !byId.has(node.parent_id)) {
      out.push({ nodeId: node.id, field: 'parent_id', message: `'${node.parent_id}' is not a node`, source: 'local' })
    }
    for (const p of s.required(node.data)) out.push({ nodeId: node.id, ...p, source: 'local' })
    const groups = reachableVars(graph, node.id, { mode, includeOwn: true })
    for (const { field, selector } of readsOf(node)) {
      if (isReachable(groups, selector)) continue
      const head = selector[0]
      const why = ['sys', 'env', 'conversation'].includes(head) ? `there is no ${head} variable '${selector[1]}'`
        : byId.has(head) ? `'${head}' is not upstream of this node` : `there is no node '${head}'`
      out.push({ nodeId: node.id, field, message: `refers to {{#${selector.join('.')}#}} but ${why}`, source: 'local' })
    }
  }
  return out
}

/** Problems grouped by node id (global ones under ''). */
export function byNode(problems: Problem[]): Map<string, Problem[]> {
  const map = new Map<string, Problem[]>()
  for (const p of problems) {
    const key = p.nodeId ?? ''
    map.set(key, [...(map.get(key) ?? []), p])
  }
  return map
}
