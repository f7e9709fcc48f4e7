/** Panels of the model-backed nodes: llm, knowledge-retrieval, question-classifier,
 *  parameter-extractor, agent. */
import { useState } from 'react'
import { useQuery } from '@tanstack/react-query'
import { api } from '../../app/api'
import { useWorkspaceModels, type WorkspaceModel } from '../../app/settings/DefaultModels'
import { kbHeaders } from '../../app/workspace'
import { useEditor, useGraph } from '../context'
import type { ModelConfig, PromptMessage } from '../dsl/types'
import { Check, Field, ListEditor, NumberInput, Section, Select, TemplateInput, TextInput, VarSelect } from './fields'
import { errorAt, type PanelProps } from './types'

/** Model names already used in this graph: the first suggestion for a new node's model. */
export function useModelNames(): string[] {
  const graph = useGraph()
  const names = new Set<string>()
  for (const n of graph.nodes) {
    const m = n.data.model as ModelConfig | undefined
    if (m?.name) names.add(m.name)
  }
  return [...names]
}

export function ModelSection({ id, data, set, disabled, errors }: PanelProps) {
  const { workspaceId } = useEditor()
  const model = (data.model as ModelConfig) ?? { name: '' }
  const params = model.completion_params ?? {}
  const used = useModelNames()
  // The engine's models and the workspace's endpoints' (the Settings page's query, shared); the
  // name stays free text while they load or when the list cannot be read.
  const listed = useWorkspaceModels(workspaceId).data?.data ?? []
  const where = (m: WorkspaceModel) => `${m.source === 'endpoint' ? m.endpoint_name ?? 'endpoint' : 'engine'}${m.kind ? ` · ${m.kind}` : ''}`
  const names = [
    ...listed.map((m) => ({ name: m.name, label: where(m) })),
    ...used.filter((n) => !listed.some((m) => m.name === n)).map((n) => ({ name: n, label: 'used in this graph' })),
  ]
  const put = (patch: Partial<ModelConfig>) => set('model', { ...model, ...patch })
  const param = (k: string, v: unknown) => {
    const next = { ...params }
    if (v === undefined) delete next[k]
    else next[k] = v
    put({ completion_params: next })
  }
  return (
    <Section title="Model">
      <Field label="Model name" error={errorAt(errors, 'model')}>
        <TextInput value={model.name} onChange={(v) => put({ name: v })} disabled={disabled} list={`models-${id}`}
          placeholder="e.g. gemma3:270m" data-testid="model-name" />
        <datalist id={`models-${id}`}>{names.map((n) => <option key={n.name} value={n.name}>{n.label}</option>)}</datalist>
      </Field>
      <div className="ed-row">
        <Field label="Temperature">
          <NumberInput value={params.temperature as number} min={0} max={2} step={0.1} disabled={disabled}
            onChange={(v) => param('temperature', v)} />
        </Field>
        <Field label="Max tokens">
          <NumberInput value={params.max_tokens as number} min={1} max={32768} disabled={disabled}
            onChange={(v) => param('max_tokens', v)} />
        </Field>
        <Field label="Top p">
          <NumberInput value={params.top_p as number} min={0} max={1} step={0.05} disabled={disabled}
            onChange={(v) => param('top_p', v)} />
        </Field>
      </div>
    </Section>
  )
}

function MemorySection({ data, set, disabled }: PanelProps) {
  const { mode } = useEditor()
  if (mode === 'workflow' || mode === 'completion') return null
  const memory = data.memory as { window?: { enabled?: boolean; size?: number } } | undefined
  return (
    <Section title="Memory">
      <Check label="Remember the conversation" checked={Boolean(memory)} disabled={disabled}
        onChange={(on) => set('memory', on ? { window: { enabled: true, size: 10 } } : undefined)} />
      {memory && (
        <Field label="Turns kept">
          <NumberInput value={memory.window?.size ?? 10} min={1} max={500} disabled={disabled}
            onChange={(v) => set('memory', { ...memory, window: { enabled: true, size: v ?? 10 } })} />
        </Field>
      )}
    </Section>
  )
}

type Vision = { enabled?: boolean; configs?: { variable_selector?: string[]; detail?: 'high' | 'low' } }

/** Dify's `vision`: the run's files go with the prompt (text inlined, images to a vision model). */
function VisionSection({ id, data, set, disabled, errors }: PanelProps) {
  const vision = (data.vision as Vision) ?? { enabled: false }
  const configs = { variable_selector: ['sys', 'files'], detail: 'high' as const, ...vision.configs }
  return (
    <Section title="Files (vision)">
      <Check label="Give the run's files to the model (text inlined, images to a vision model)"
        checked={Boolean(vision.enabled)} disabled={disabled}
        onChange={(on) => set('vision', { ...vision, enabled: on, configs })} />
      {vision.enabled && (
        <>
          <Field label="Files variable" error={errorAt(errors, 'vision')}>
            <VarSelect nodeId={id} value={configs.variable_selector} disabled={disabled} aria-label="Files variable"
              data-testid="vision-var"
              onChange={(v) => set('vision', { ...vision, configs: { ...configs, variable_selector: v } })} />
          </Field>
          <Field label="Image detail">
            <Select value={configs.detail} options={['high', 'low'] as const} disabled={disabled}
              aria-label="Image detail" onChange={(detail) => set('vision', { ...vision, configs: { ...configs, detail } })} />
          </Field>
        </>
      )}
    </Section>
  )
}

export function LlmPanel(p: PanelProps) {
  const { id, data, set, disabled, errors } = p
  const prompts = (data.prompt_template as PromptMessage[]) ?? []
  const context = (data.context as { enabled?: boolean; variable_selector?: string[] }) ?? { enabled: false }
  return (
    <>
      <ModelSection {...p} />
      <Section title="Context">
        <Check label="Use retrieved context ({{#context#}})" checked={Boolean(context.enabled)} disabled={disabled}
          onChange={(on) => set('context', { ...context, enabled: on })} />
        {context.enabled && (
          <Field label="Context variable" error={errorAt(errors, 'context')}>
            <VarSelect nodeId={id} value={context.variable_selector} disabled={disabled} aria-label="Context variable"
              data-testid="context-var" onChange={(v) => set('context', { ...context, variable_selector: v })} />
          </Field>
        )}
      </Section>
      <Section title="Prompt">
        <ListEditor items={prompts} disabled={disabled} addLabel="Message"
          make={() => ({ role: 'user', text: '' })} onChange={(v) => set('prompt_template', v)}
          render={(m, put, i) => (
            <div className="ed-prompt">
              <Select value={m.role} options={['system', 'user', 'assistant'] as const} disabled={disabled}
                aria-label={`Role of message ${i + 1}`} onChange={(role) => put({ ...m, role })} />
              <TemplateInput nodeId={id} value={m.text} disabled={disabled} rows={4}
                aria-label={`Prompt message ${i + 1}`} data-testid={`prompt-${i}`}
                onChange={(text) => put({ ...m, text })} />
            </div>
          )} />
        {errorAt(errors, 'prompt_template') && <p className="ed-field-error">{errorAt(errors, 'prompt_template')}</p>}
      </Section>
      <MemorySection {...p} />
      <VisionSection {...p} />
      <Section title="Structured output">
        <Check label="Answer as JSON under a schema" checked={Boolean(data.structured_output_enabled)} disabled={disabled}
          onChange={(on) => {
            set('structured_output_enabled', on)
            if (on && !data.structured_output) set('structured_output', { schema: { type: 'object', properties: {} } })
          }} />
        {Boolean(data.structured_output_enabled) && (
          <JsonField label="JSON schema" value={(data.structured_output as { schema?: unknown })?.schema}
            disabled={disabled} onChange={(schema) => set('structured_output', { schema })} />
        )}
      </Section>
    </>
  )
}

/** A JSON value edited as text; applied when it parses. */
export function JsonField({ label, value, onChange, disabled }: {
  label: string; value: unknown; onChange: (v: unknown) => void; disabled?: boolean
}) {
  const [text, setText] = useState(() => JSON.stringify(value ?? {}, null, 2))
  const [bad, setBad] = useState('')
  return (
    <Field label={label} error={bad}>
      <textarea className="ed-code" rows={6} value={text} disabled={disabled} onChange={(e) => {
        setText(e.target.value)
        try {
          onChange(JSON.parse(e.target.value))
          setBad('')
        } catch (err) {
          setBad(`not valid JSON: ${(err as Error).message}`)
        }
      }} />
    </Field>
  )
}

interface Dataset { id: string; name: string; document_count?: number }

/** The workspace's knowledge bases, from the datasets API (a console token names the workspace);
 *  the same query as the Knowledge page's, so either fills the other's cache. */
function useDatasets(workspaceId: string) {
  return useQuery({
    queryKey: ['datasets', workspaceId],
    queryFn: () => api<{ data: Dataset[] }>('GET', '/v1/datasets?limit=100', undefined, { headers: kbHeaders(workspaceId) }),
  })
}

export function KnowledgePanel({ id, data, set, disabled, errors }: PanelProps) {
  const { workspaceId } = useEditor()
  const datasets = useDatasets(workspaceId)
  const found = datasets.data?.data ?? []
  const chosen = (data.dataset_ids as string[]) ?? []
  const config = (data.multiple_retrieval_config as { top_k?: number; score_threshold?: number | null }) ?? {}
  return (
    <>
      <Section title="Query">
        <Field label="Query variable" error={errorAt(errors, 'query_variable_selector')}>
          <VarSelect nodeId={id} value={data.query_variable_selector as string[]} disabled={disabled}
            aria-label="Query variable" data-testid="query-var" onChange={(v) => set('query_variable_selector', v)} />
        </Field>
      </Section>
      <Section title="Knowledge bases">
        {datasets.error && <p className="ed-field-error" role="alert">{datasets.error.message}</p>}
        {datasets.isPending && <p className="ed-muted" role="status">Loading knowledge bases…</p>}
        {datasets.isSuccess && found.length === 0 && <p className="ed-muted">No knowledge bases in this workspace yet.</p>}
        <div className="ed-checklist" data-testid="dataset-list">
          {found.map((ds) => (
            <Check key={ds.id} label={ds.name} checked={chosen.includes(ds.id)} disabled={disabled}
              onChange={(on) => set('dataset_ids', on ? [...chosen, ds.id] : chosen.filter((x) => x !== ds.id))} />
          ))}
          {chosen.filter((x) => datasets.isSuccess && !found.some((d) => d.id === x)).map((x) => (
            <Check key={x} label={`${x} (not found)`} checked disabled={disabled}
              onChange={() => set('dataset_ids', chosen.filter((y) => y !== x))} />
          ))}
        </div>
        {errorAt(errors, 'dataset_ids') && <p className="ed-field-error" role="alert">{errorAt(errors, 'dataset_ids')}</p>}
      </Section>
      <Section title="Retrieval">
        <div className="ed-row">
          <Field label="Search method">
            <Select value={(data.search_method as string) ?? 'default'} disabled={disabled}
              options={[['default', 'Dataset default'], ['semantic_search', 'Vector'], ['full_text_search', 'Full text'],
                ['hybrid_search', 'Hybrid']] as const}
              onChange={(v) => set('search_method', v)} />
          </Field>
          <Field label="Top K">
            <NumberInput value={config.top_k ?? 4} min={1} max={100} disabled={disabled}
              onChange={(v) => set('multiple_retrieval_config', { ...config, top_k: v ?? 4 })} />
          </Field>
          <Field label="Score threshold">
            <NumberInput value={config.score_threshold ?? undefined} min={0} max={1} step={0.05} disabled={disabled}
              onChange={(v) => set('multiple_retrieval_config', { ...config, score_threshold: v ?? null })} />
          </Field>
        </div>
      </Section>
    </>
  )
}

export function ClassifierPanel(p: PanelProps) {
  const { id, data, set, disabled, errors } = p
  const classes = (data.classes as { id: string; name: string }[]) ?? []
  const nextId = () => String(Math.max(0, ...classes.map((c) => Number(c.id) || 0)) + 1)
  return (
    <>
      <Section title="Input">
        <Field label="Query variable" error={errorAt(errors, 'query_variable_selector')}>
          <VarSelect nodeId={id} value={data.query_variable_selector as string[]} disabled={disabled}
            aria-label="Query variable" onChange={(v) => set('query_variable_selector', v)} />
        </Field>
      </Section>
      <ModelSection {...p} />
      <Section title="Classes (one branch each)">
        <ListEditor items={classes} disabled={disabled} addLabel="Class" make={() => ({ id: nextId(), name: '' })}
          onChange={(v) => set('classes', v)}
          render={(c, put, i) => <TextInput value={c.name} disabled={disabled} aria-label={`Class ${i + 1}`}
            placeholder={`Class ${i + 1}`} onChange={(name) => put({ ...c, name })} />} />
      </Section>
      <Section title="Instruction">
        <TemplateInput nodeId={id} value={(data.instruction as string) ?? ''} disabled={disabled}
          aria-label="Instruction" onChange={(v) => set('instruction', v)} />
      </Section>
    </>
  )
}

const PARAM_TYPES = ['string', 'number', 'boolean', 'select', 'array[string]', 'array[number]', 'array[object]'] as const

export function ExtractorPanel(p: PanelProps) {
  const { id, data, set, disabled, errors } = p
  const params = (data.parameters as { name: string; type: string; description?: string; required?: boolean }[]) ?? []
  return (
    <>
      <Section title="Input">
        <Field label="Text to read" error={errorAt(errors, 'query')}>
          <VarSelect nodeId={id} value={data.query as string[]} disabled={disabled} aria-label="Input variable"
            onChange={(v) => set('query', v)} />
        </Field>
      </Section>
      <ModelSection {...p} />
      <Section title="Parameters">
        <ListEditor items={params} disabled={disabled} addLabel="Parameter"
          make={() => ({ name: `param${params.length + 1}`, type: 'string', description: '', required: false })}
          onChange={(v) => set('parameters', v)}
          render={(prm, put) => (
            <div className="ed-row">
              <TextInput value={prm.name} disabled={disabled} aria-label="Name" onChange={(name) => put({ ...prm, name })} />
              <Select value={prm.type as (typeof PARAM_TYPES)[number]} options={PARAM_TYPES} disabled={disabled}
                aria-label="Type" onChange={(type) => put({ ...prm, type })} />
              <TextInput value={prm.description ?? ''} placeholder="description" disabled={disabled}
                aria-label="Description" onChange={(description) => put({ ...prm, description })} />
              <Check label="required" checked={Boolean(prm.required)} disabled={disabled}
                onChange={(required) => put({ ...prm, required })} />
            </div>
          )} />
        {errorAt(errors, 'parameters') && <p className="ed-field-error">{errorAt(errors, 'parameters')}</p>}
      </Section>
      <Section title="Instruction">
        <TemplateInput nodeId={id} value={(data.instruction as string) ?? ''} disabled={disabled}
          aria-label="Instruction" onChange={(v) => set('instruction', v)} />
      </Section>
    </>
  )
}

export function AgentPanel(p: PanelProps) {
  const { id, data, set, disabled } = p
  const tools = (data.tools as { tool_name: string; description?: string }[]) ?? []
  return (
    <>
      <ModelSection {...p} />
      <Section title="Instruction">
        <TemplateInput nodeId={id} value={(data.instruction as string) ?? ''} disabled={disabled} rows={4}
          aria-label="Instruction" onChange={(v) => set('instruction', v)} />
      </Section>
      <Section title="Query">
        <TemplateInput nodeId={id} value={(data.query as string) ?? ''} disabled={disabled} rows={2}
          aria-label="Query" onChange={(v) => set('query', v)} />
      </Section>
      <Section title="Tools">
        <ListEditor items={tools} disabled={disabled} addLabel="Tool" make={() => ({ tool_name: '' })}
          onChange={(v) => set('tools', v)}
          render={(t, put, i) => <TextInput value={t.tool_name} disabled={disabled} aria-label={`Tool ${i + 1}`}
            placeholder="e.g. time.now" onChange={(tool_name) => put({ ...t, tool_name })} />} />
      </Section>
      <Section title="Strategy">
        <div className="ed-row">
          <Field label="Strategy">
            <Select value={(data.strategy as 'function_calling' | 'react') ?? 'function_calling'} disabled={disabled}
              options={[['function_calling', 'Function calling'], ['react', 'ReAct']] as const}
              onChange={(v) => set('strategy', v)} />
          </Field>
          <Field label="Max rounds">
            <NumberInput value={data.max_iterations as number} min={1} max={50} disabled={disabled}
              onChange={(v) => set('max_iterations', v ?? 5)} />
          </Field>
          <Field label="First call">
            <Select value={(data.tool_choice as 'auto' | 'required') ?? 'auto'} options={['auto', 'required'] as const}
              disabled={disabled} onChange={(v) => set('tool_choice', v)} />
          </Field>
        </div>
      </Section>
      <MemorySection {...p} />
    </>
  )
}
