/**
 * A run's trace, folded from its events (the draft run's SSE stream, or a stored run's
 * `GET .../runs/{id}/events`): per node its status, inputs, outputs, time, tokens and error,
 * the streamed answer, an agent's rounds and the human-input forms a paused run waits for. Pure:
 * `fold(state, event)` returns the new state.
 */
import type { HumanInputForm } from './humanInput'

export type NodeStatus = 'running' | 'succeeded' | 'failed' | 'exception' | 'stopped'

export interface NodeTrace {
  nodeId: string
  nodeType: string
  title: string
  status: NodeStatus
  inputs?: Record<string, unknown>
  outputs?: Record<string, unknown>
  processData?: Record<string, unknown>
  error?: string | null
  elapsedS?: number
  tokens?: number
  /** How many times the node ran (more than once inside an iteration or loop). */
  runs: number
}

export interface AgentRound {
  position: number
  thought: string
  tool: string
  toolInput: string
  observation: string
}

export interface RunTrace {
  /** `paused`: waiting for a human-input form (`forms`); answered, the run goes on. */
  status: 'idle' | 'running' | 'succeeded' | 'failed' | 'stopped' | 'paused'
  runId?: string
  conversationId?: string
  nodes: Record<string, NodeTrace>
  /** Node ids in the order they started. */
  order: string[]
  answer: string
  rounds: AgentRound[]
  outputs?: Record<string, unknown>
  error?: string
  totalTokens?: number
  elapsedS?: number
  /** The human-input forms the run waits for (humanInput.ts). */
  forms?: HumanInputForm[]
}

export const emptyTrace = (): RunTrace => ({ status: 'idle', nodes: {}, order: [], answer: '', rounds: [] })

type Ev = Record<string, unknown> & { event?: string; data?: Record<string, unknown> }

const str = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v))

export function fold(state: RunTrace, ev: Ev): RunTrace {
  const d = (ev.data ?? {}) as Record<string, unknown>
  const s: RunTrace = { ...state }
  if (typeof ev.conversation_id === 'string') s.conversationId = ev.conversation_id
  switch (ev.event) {
    case 'workflow_started':
      return { ...s, status: 'running', runId: String(ev.workflow_run_id ?? d.id ?? ev.task_id ?? '') }
    case 'node_started': {
      const id = String(d.node_id)
      const prev = s.nodes[id]
      const node: NodeTrace = {
        ...(prev ?? {}), nodeId: id, nodeType: String(d.node_type ?? ''), title: String(d.title ?? id),
        status: 'running', runs: (prev?.runs ?? 0) + 1, error: null,
      }
      if (d.inputs) node.inputs = d.inputs as Record<string, unknown>
      return { ...s, status: 'running', nodes: { ...s.nodes, [id]: node }, order: prev ? s.order : [...s.order, id] }
    }
    case 'node_finished': {
      const id = String(d.node_id)
      const prev = s.nodes[id]
      const meta = (d.execution_metadata ?? {}) as { total_tokens?: number }
      const node: NodeTrace = {
        nodeId: id, nodeType: String(d.node_type ?? prev?.nodeType ?? ''), title: String(d.title ?? prev?.title ?? id),
        runs: prev?.runs ?? 1, status: (d.status as NodeStatus) ?? 'succeeded',
        inputs: (d.inputs as Record<string, unknown>) ?? prev?.inputs, outputs: d.outputs as Record<string, unknown>,
        processData: d.process_data as Record<string, unknown>, error: (d.error as string) ?? null,
        elapsedS: typeof d.elapsed_time === 'number' ? d.elapsed_time : undefined,
        tokens: (prev?.tokens ?? 0) + (meta.total_tokens ?? 0),
      }
      const forms = s.forms?.filter((f) => f.form_id !== d.id)
      return { ...s, nodes: { ...s.nodes, [id]: node }, order: prev ? s.order : [...s.order, id], forms }
    }
    case 'human_input_required': {
      const form = d as unknown as HumanInputForm
      return { ...s, forms: [...(s.forms ?? []).filter((f) => f.form_id !== form.form_id), form] }
    }
    case 'workflow_paused':
      return { ...s, status: 'paused' }
    case 'workflow_resumed':
      return { ...s, status: 'running' }
    case 'message':
    case 'agent_message':
      return { ...s, status: s.status === 'idle' ? 'running' : s.status, answer: s.answer + str(ev.answer) }
    case 'text_chunk':
      return { ...s, answer: s.answer + str(d.text) }
    case 'agent_thought': {
      const round: AgentRound = {
        position: Number(ev.position ?? s.rounds.length + 1), thought: str(ev.thought), tool: str(ev.tool),
        toolInput: str(ev.tool_input), observation: str(ev.observation),
      }
      const rest = s.rounds.filter((r) => r.position !== round.position)
      return { ...s, rounds: [...rest, round].sort((a, b) => a.position - b.position) }
    }
    case 'message_end': {
      const usage = ((ev.metadata ?? {}) as { usage?: { total_tokens?: number } }).usage
      return { ...s, status: s.status === 'failed' ? 'failed' : 'succeeded', totalTokens: usage?.total_tokens ?? s.totalTokens }
    }
    case 'workflow_finished': {
      const status = String(d.status ?? 'succeeded')
      return {
        ...s, status: status === 'succeeded' ? 'succeeded' : status === 'stopped' ? 'stopped' : 'failed',
        outputs: d.outputs as Record<string, unknown>, error: (d.error as string) || s.error,
        totalTokens: (d.total_tokens as number) ?? s.totalTokens, elapsedS: d.elapsed_time as number,
      }
    }
    case 'error':
      return { ...s, status: 'failed', error: str(ev.message ?? d.message ?? 'run failed') }
    default:
      return s
  }
}

export const foldAll = (events: Ev[], start: RunTrace = emptyTrace()) => events.reduce(fold, start)

export interface ToolCall {
  tool: string
  input: string
  observation: string
}

/** A string that holds JSON, decoded; anything else as it is. */
function decoded(v: unknown): unknown {
  if (typeof v !== 'string') return v
  try {
    return JSON.parse(v)
  } catch {
    return v
  }
}

const shown = (v: unknown) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v))

/** The calls of one round, each with its own arguments and observation: an agent_thought names
 *  its tools joined by ';', and its tool_input and observation are JSON objects keyed by tool
 *  (Dify's shape) whose values are often JSON strings again. Unparsable parts stay as text. */
export function roundCalls(round: AgentRound): ToolCall[] {
  if (!round.tool) return []
  const tools = round.tool.split(';').filter(Boolean)
  const inputs = decoded(round.toolInput)
  const observations = decoded(round.observation)
  const keyed = (all: unknown, tool: string, whole: string) =>
    (all && typeof all === 'object' && !Array.isArray(all) ? shown(decoded((all as Record<string, unknown>)[tool])) : whole)
  return tools.map((tool) => ({
    tool, input: keyed(inputs, tool, round.toolInput), observation: keyed(observations, tool, round.observation),
  }))
}
