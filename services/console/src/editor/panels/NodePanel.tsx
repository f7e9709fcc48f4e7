/** The side panel of the selected node: its settings (one panel per node type), the failure
 *  policy, and its last run (inputs, outputs, status, time, tokens, error) with a single-node
 *  run from hand-typed inputs. */
import { memo, useState, type ComponentType } from 'react'
import { api, ApiError } from '../../app/api'
import { useEditor } from '../context'
import { spec } from '../dsl/nodeTypes'
import type { DslNode, NodeData, NodeType } from '../dsl/types'
import { readsOf } from '../graph/validate'
import type { NodeTrace } from '../run/trace'
import { AgentPanel, ClassifierPanel, ExtractorPanel, KnowledgePanel, LlmPanel } from './aiPanels'
import { Check, Field, NumberInput, Section, Select, TextInput } from './fields'
import {
  AggregatorPanel, AnswerPanel, AssignerPanel, CodePanel, EndPanel, HttpPanel, IfElsePanel, IterationPanel, LoopPanel,
  NoSettings, StartPanel, TemplatePanel, ToolPanel,
} from './flowPanels'
import { HumanInputPanel } from './humanInputPanel'
import { DocumentExtractorPanel, ListOperatorPanel } from './listPanels'
import { errorAt, type PanelProps } from './types'

const PANELS: Record<NodeType, ComponentType<PanelProps>> = {
  start: StartPanel, end: EndPanel, answer: AnswerPanel, llm: LlmPanel, 'knowledge-retrieval': KnowledgePanel,
  'if-else': IfElsePanel, 'question-classifier': ClassifierPanel, 'parameter-extractor': ExtractorPanel,
  code: CodePanel, 'template-transform': TemplatePanel, 'http-request': HttpPanel, tool: ToolPanel,
  'variable-aggregator': AggregatorPanel, assigner: AssignerPanel, iteration: IterationPanel,
  'iteration-start': NoSettings, loop: LoopPanel, 'loop-start': NoSettings, 'loop-end': NoSettings, agent: AgentPanel,
  'list-operator': ListOperatorPanel, 'document-extractor': DocumentExtractorPanel, 'human-input': HumanInputPanel,
}

// Nodes whose failure policy the engine applies (containers' starts and ends have none).
const NO_POLICY = new Set(['start', 'end', 'answer', 'iteration-start', 'loop-start', 'loop-end'])

function FailurePolicy({ data, set, disabled, errors }: PanelProps) {
  const retry = (data.retry_config as { retry_enabled?: boolean; max_retries?: number; retry_interval?: number }) ?? {}
  return (
    <Section title="On failure">
      <Check label="Retry" checked={Boolean(retry.retry_enabled)} disabled={disabled}
        onChange={(on) => set('retry_config', { max_retries: 3, retry_interval: 1000, ...retry, retry_enabled: on })} />
      {retry.retry_enabled && (
        <div className="ed-row">
          <Field label="Max retries" error={errorAt(errors, 'retry_config')}>
            <NumberInput value={retry.max_retries ?? 3} min={0} max={10} disabled={disabled}
              onChange={(v) => set('retry_config', { ...retry, max_retries: v ?? 3 })} />
          </Field>
          <Field label="First wait (ms)">
            <NumberInput value={retry.retry_interval ?? 1000} min={0} max={60000} disabled={disabled}
              onChange={(v) => set('retry_config', { ...retry, retry_interval: v ?? 1000 })} />
          </Field>
        </div>
      )}
      <div className="ed-row">
        <Field label="Then">
          <Select value={(data.error_strategy as string) ?? ''} disabled={disabled}
            options={[['', 'fail the run'], ['default-value', 'use default values'], ['fail-branch', 'take the FAIL branch']] as const}
            onChange={(v) => set('error_strategy', v || undefined)} />
        </Field>
        <Field label="Timeout (s)" error={errorAt(errors, 'timeout_s')}>
          <NumberInput value={data.timeout_s as number | undefined} min={1} max={3600} disabled={disabled}
            onChange={(v) => set('timeout_s', v)} />
        </Field>
      </div>
    </Section>
  )
}

function Json({ value }: { value: unknown }) {
  return <pre className="ed-json">{value === undefined ? '—' : JSON.stringify(value, null, 2)}</pre>
}

export function TraceView({ trace }: { trace: NodeTrace | undefined }) {
  if (!trace) return <p className="ed-muted">This node has not run yet.</p>
  return (
    <div className="ed-trace" data-testid={`trace-${trace.nodeId}`} data-status={trace.status}>
      <p>
        <span className={`ed-status ed-status-${trace.status}`}>{trace.status}</span>
        {trace.elapsedS !== undefined && <> · {(trace.elapsedS * 1000).toFixed(0)} ms</>}
        {trace.tokens ? <> · {trace.tokens} tokens</> : null}
        {trace.runs > 1 && <> · ran {trace.runs}×</>}
      </p>
      {trace.error && <p className="ed-field-error" role="alert">{trace.error}</p>}
      <h5>Inputs</h5><Json value={trace.inputs} />
      <h5>Outputs</h5><Json value={trace.outputs} />
    </div>
  )
}

interface NodeRunResult { status: string; inputs?: unknown; outputs?: unknown; error?: string | null; elapsed_time?: number; total_tokens?: number }

function SingleRun({ node, beforeRun }: { node: DslNode; beforeRun: () => Promise<boolean> }) {
  const { workspaceId, appId, canEdit } = useEditor()
  const keys = [...new Set(readsOf(node).map((r) => r.selector.slice(0, 2).join('.')))]
  const [inputs, setInputs] = useState<Record<string, string>>({})
  const [result, setResult] = useState<NodeRunResult | null>(null)
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)
  if (!canEdit) return null
  const run = async () => {
    setBusy(true)
    setError('')
    setResult(null)
    try {
      if (!(await beforeRun())) throw new Error('Save the draft first: it has problems the gateway refuses.')
      const parsed = Object.fromEntries(Object.entries(inputs).map(([k, v]) => {
        try {
          return [k, JSON.parse(v)]
        } catch {
          return [k, v]
        }
      }))
      setResult(await api<NodeRunResult>('POST', `/console/api/workspaces/${workspaceId}/apps/${appId}/draft/nodes/${node.id}/run`,
        { inputs: parsed }))
    } catch (err) {
      setError(err instanceof ApiError || err instanceof Error ? err.message : String(err))
    } finally {
      setBusy(false)
    }
  }
  return (
    <Section title="Run this node alone">
      {keys.length === 0 && <p className="ed-muted">It reads no variables.</p>}
      {keys.map((k) => (
        <Field key={k} label={k}>
          <TextInput value={inputs[k] ?? ''} aria-label={`Input ${k}`} onChange={(v) => setInputs({ ...inputs, [k]: v })} />
        </Field>
      ))}
      <button type="button" className="ed-btn" disabled={busy} onClick={run} data-testid="single-run">
        {busy ? 'Running…' : 'Run node'}
      </button>
      {error && <p className="ed-field-error" role="alert">{error}</p>}
      {result && (
        <TraceView trace={{ nodeId: node.id, nodeType: node.data.type, title: String(node.data.title ?? node.id),
          status: result.status as NodeTrace['status'], inputs: result.inputs as Record<string, unknown>,
          outputs: result.outputs as Record<string, unknown>, error: result.error, elapsedS: result.elapsed_time,
          tokens: result.total_tokens, runs: 1 }} />
      )}
    </Section>
  )
}

export const NodePanel = memo(function NodePanel({ node, onChange, onClose, beforeRun }: {
  node: DslNode
  onChange: (id: string, update: (data: NodeData) => NodeData, tag: string) => void
  onClose: () => void
  beforeRun: () => Promise<boolean>
}) {
  const { problems, canEdit, trace } = useEditor()
  const [tab, setTab] = useState<'settings' | 'run'>('settings')
  const s = spec(node.data.type)
  const Panel = PANELS[node.data.type] ?? NoSettings
  const mine = problems.get(node.id) ?? []
  const errors: Record<string, string> = {}
  for (const p of mine) if (p.field && !errors[p.field]) errors[p.field] = p.message
  const set = (field: string, value: unknown) => onChange(node.id, (d) => {
    const next = { ...d }
    if (value === undefined) delete next[field]
    else next[field] = value
    return next
  }, `${node.id}:${field}`)
  const props: PanelProps = { id: node.id, data: node.data, set, disabled: !canEdit, errors }
  return (
    <aside className="ed-panel" aria-label={`${s?.label ?? node.data.type} settings`} data-testid={`panel-${node.id}`}>
      <header className="ed-panel-head">
        <span className={`ed-badge ed-cat-${s?.category ?? 'flow'}`}>{s?.label ?? node.data.type}</span>
        <TextInput value={String(node.data.title ?? '')} disabled={!canEdit} aria-label="Node title"
          onChange={(v) => set('title', v)} />
        <button type="button" className="ed-icon-btn" aria-label="Close panel" onClick={onClose}>✕</button>
      </header>
      <p className="ed-muted ed-node-id">id: <code>{node.id}</code></p>
      <div className="ed-tabs" role="tablist">
        <button role="tab" aria-selected={tab === 'settings'} onClick={() => setTab('settings')}>Settings</button>
        <button role="tab" aria-selected={tab === 'run'} onClick={() => setTab('run')} data-testid="tab-last-run">Last run</button>
      </div>
      {mine.length > 0 && (
        <ul className="ed-problems" data-testid="node-problems">
          {mine.map((p, i) => <li key={i}>{p.field ? <code>{p.field}</code> : null} {p.message}</li>)}
        </ul>
      )}
      {tab === 'settings' ? (
        <div className="ed-panel-body">
          <Panel {...props} />
          {!NO_POLICY.has(node.data.type) && <FailurePolicy {...props} />}
        </div>
      ) : (
        <div className="ed-panel-body">
          <TraceView trace={trace.nodes[node.id]} />
          <SingleRun node={node} beforeRun={beforeRun} />
        </div>
      )}
    </aside>
  )
})
