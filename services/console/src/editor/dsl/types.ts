/**
 * The workflow DSL (version 1) as the editor sees it: the same document the gateway stores
 * (`GET/PUT .../draft` → `{dsl}`) and the orchestrator runs. Python's pydantic models in
 * `libs/common/src/loom_common/dsl/` are the source of truth; these types name only what the
 * editor reads or writes and keep every other key (`[key: string]: unknown`), so a document
 * survives a round trip through the editor unchanged.
 */

export const NODE_TYPES = [
  'start', 'end', 'answer', 'llm', 'knowledge-retrieval', 'if-else', 'question-classifier',
  'parameter-extractor', 'code', 'template-transform', 'http-request', 'tool', 'variable-aggregator',
  'assigner', 'iteration', 'iteration-start', 'loop', 'loop-start', 'loop-end', 'agent', 'list-operator',
  'document-extractor', 'human-input',
] as const

export type NodeType = (typeof NODE_TYPES)[number]

/** `[node_id, field, sub, ...]`; heads `sys`, `env`, `conversation` are reserved scopes. */
export type Selector = string[]

export interface NodeData {
  type: NodeType
  title?: string
  desc?: string
  error_strategy?: 'fail-branch' | 'default-value' | null
  [key: string]: unknown
}

export interface Position {
  x: number
  y: number
}

export interface DslNode {
  id: string
  data: NodeData
  /** The iteration or loop this node runs inside; its position is then relative to it. */
  parent_id?: string | null
  position?: Position | null
  [key: string]: unknown
}

export interface DslEdge {
  id?: string
  source: string
  target: string
  source_handle?: string
  target_handle?: string
  [key: string]: unknown
}

export interface ConversationVariable {
  id?: string
  name: string
  value_type: string
  value?: unknown
  description?: string
  [key: string]: unknown
}

export interface EnvironmentVariable {
  name: string
  value_type: 'string' | 'number' | 'secret'
  value?: unknown
  [key: string]: unknown
}

export interface Graph {
  version?: string
  nodes: DslNode[]
  edges: DslEdge[]
  conversation_variables?: ConversationVariable[]
  environment_variables?: EnvironmentVariable[]
  [key: string]: unknown
}

export type AppMode = 'chat' | 'chatflow' | 'workflow' | 'agent' | 'completion'

/** The app document (`version: loom/1`) around the graph. */
export interface AppDoc {
  version: string
  kind?: string
  app: { name: string; mode: AppMode; icon?: string; description?: string; [key: string]: unknown }
  workflow: { graph: Graph; features?: Record<string, unknown>; [key: string]: unknown }
  [key: string]: unknown
}

// ---- typed views of the node data the panels edit ------------------------------------------

export interface InputVariable {
  variable: string
  label?: string
  type: 'text-input' | 'paragraph' | 'select' | 'number' | 'checkbox' | 'json_object' | 'file' | 'file-list'
  required?: boolean
  max_length?: number | null
  options?: string[]
  default?: unknown
}

export interface ModelConfig {
  provider?: string
  name: string
  mode?: 'chat' | 'completion'
  completion_params?: Record<string, unknown>
}

export interface PromptMessage {
  role: 'system' | 'user' | 'assistant'
  text: string
}

export const OPERATORS = [
  'contains', 'not contains', 'start with', 'end with', 'is', 'is not', 'empty', 'not empty',
  'in', 'not in', 'all of', '=', '≠', '>', '<', '≥', '≤', 'null', 'not null', 'exists', 'not exists',
] as const

export interface Condition {
  variable_selector: Selector
  comparison_operator: (typeof OPERATORS)[number]
  value?: unknown
}

export interface Case {
  case_id: string
  logical_operator: 'and' | 'or'
  conditions: Condition[]
}

export interface VariableBinding {
  variable: string
  value_selector: Selector
}

/** A variable a node offers to those downstream (the picker's entries). */
export interface VarInfo {
  name: string
  type: string
}
