/**
 * Variable scoping: which `{{#node.var#}}` a node may read. A node reads the outputs of the
 * nodes upstream of it in its own scope (edges never cross a container boundary), and, inside
 * an iteration or loop, the container's own variables (`item`/`index`, loop variables) plus
 * everything upstream of the container, outward to the top. `sys`, `env` and `conversation`
 * variables are readable everywhere (`sys.query` and the conversation only in chat modes).
 */
import { spec } from '../dsl/nodeTypes'
import type { AppMode, DslNode, Graph, Selector } from '../dsl/types'

export interface Var {
  selector: Selector
  name: string
  type: string
}

export interface VarGroup {
  /** A node id, or `sys` / `env` / `conversation`. */
  id: string
  title: string
  vars: Var[]
}

export const CHAT_MODES: AppMode[] = ['chat', 'chatflow', 'agent']

export function sysVars(mode: AppMode): Var[] {
  const chat = CHAT_MODES.includes(mode)
  const names: [string, string][] = [
    ...(chat ? ([['query', 'string'], ['conversation_id', 'string'], ['dialogue_count', 'number']] as [string, string][]) : []),
    ['files', 'array[file]'], ['user_id', 'string'], ['app_id', 'string'], ['workflow_run_id', 'string'],
  ]
  return names.map(([name, type]) => ({ selector: ['sys', name], name: `sys.${name}`, type }))
}

const title = (n: DslNode) => String(n.data.title || n.id)

/** Ids of the nodes upstream of `nodeId` in its own scope (not itself), nearest first. */
export function upstream(graph: Graph, nodeId: string): string[] {
  const incoming = new Map<string, string[]>()
  for (const e of graph.edges) {
    const list = incoming.get(e.target) ?? []
    list.push(e.source)
    incoming.set(e.target, list)
  }
  const seen = new Set<string>([nodeId])
  const order: string[] = []
  let frontier = [nodeId]
  while (frontier.length) {
    const next: string[] = []
    for (const id of frontier) {
      for (const src of incoming.get(id) ?? []) {
        if (seen.has(src)) continue
        seen.add(src)
        order.push(src)
        next.push(src)
      }
    }
    frontier = next
  }
  return order
}

function nodeVars(node: DslNode): Var[] {
  return (spec(node.data.type)?.outputs(node.data) ?? [])
    .map((v) => ({ selector: [node.id, v.name], name: v.name, type: v.type }))
}

/** What a container offers the nodes inside it. */
export function containerVars(container: DslNode): Var[] {
  const id = container.id
  if (container.data.type === 'iteration') {
    return [{ selector: [id, 'item'], name: 'item', type: 'any' }, { selector: [id, 'index'], name: 'index', type: 'number' }]
  }
  if (container.data.type === 'loop') {
    const vars = (container.data.loop_variables as { label: string; var_type?: string }[] | undefined) ?? []
    return [...vars.map((v) => ({ selector: [id, v.label], name: v.label, type: v.var_type ?? 'string' })),
      { selector: [id, 'index'], name: 'index', type: 'number' }]
  }
  return []
}

export interface ScopeOptions {
  mode: AppMode
  /** Also offer the node's own container variables when the node is a container (loop break
   *  conditions read `[loop_id, var]`) and its children's outputs (iteration's output_selector). */
  includeOwn?: boolean
}

/** The variables `nodeId` may read, grouped by node, nearest first, then env/conversation/sys. */
export function reachableVars(graph: Graph, nodeId: string, opts: ScopeOptions): VarGroup[] {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]))
  const groups: VarGroup[] = []
  const self = byId.get(nodeId)
  if (self && opts.includeOwn && spec(self.data.type)?.container) {
    groups.push({ id: self.id, title: title(self), vars: containerVars(self) })
    for (const child of graph.nodes.filter((n) => n.parent_id === self.id)) {
      const vars = nodeVars(child)
      if (vars.length) groups.push({ id: child.id, title: title(child), vars })
    }
  }
  let current = self
  let guard = 0
  let here = nodeId
  while (guard++ < 64) {
    for (const id of upstream(graph, here)) {
      const n = byId.get(id)
      if (!n) continue
      const vars = nodeVars(n)
      if (vars.length) groups.push({ id, title: title(n), vars })
    }
    const parent = current?.parent_id ? byId.get(current.parent_id) : undefined
    if (!parent) break
    groups.push({ id: parent.id, title: title(parent), vars: containerVars(parent) })
    current = parent
    here = parent.id
  }
  const conv = graph.conversation_variables ?? []
  if (conv.length) {
    groups.push({ id: 'conversation', title: 'Conversation', vars: conv.map((v) => ({
      selector: ['conversation', v.name], name: v.name, type: v.value_type })) })
  }
  const env = graph.environment_variables ?? []
  if (env.length) {
    groups.push({ id: 'env', title: 'Environment', vars: env.map((v) => ({
      selector: ['env', v.name], name: v.name, type: v.value_type })) })
  }
  groups.push({ id: 'sys', title: 'System', vars: sysVars(opts.mode) })
  return groups
}

export const REFERENCE = /\{\{#([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+)#\}\}/g

/** Every selector a template text refers to, in order. */
export function references(text: string): Selector[] {
  return [...(text ?? '').matchAll(REFERENCE)].map((m) => m[1].split('.'))
}

export const template = (selector: Selector) => `{{#${selector.join('.')}#}}`

/** True when `selector` is among the reachable variables (a longer path into an object output counts). */
export function isReachable(groups: VarGroup[], selector: Selector): boolean {
  if (selector[0] === 'context' && selector.length === 1) return true
  return groups.some((g) => g.vars.some((v) =>
    v.selector.length <= selector.length && v.selector.every((p, i) => p === selector[i])))
}
