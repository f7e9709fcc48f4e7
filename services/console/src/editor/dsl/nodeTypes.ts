/**
 * One entry per node type the orchestrator runs: what the palette shows, the data a new node
 * starts with, the variables it offers downstream, its outgoing handles and the checks the
 * editor can make before the gateway's validator sees the graph.
 *
 * Mirrors `docs/dsl.md`'s node table; when a type gains a field there, add it here.
 */
import type { Case, NodeData, NodeType, Selector, VarInfo } from './types'

export type Category = 'flow' | 'ai' | 'data' | 'logic'

export interface Handle {
  id: string
  label: string
}

export interface FieldProblem {
  field: string
  message: string
}

export interface NodeSpec {
  type: NodeType
  label: string
  category: Category
  /** Shown in the palette (container start nodes are created with their container). */
  palette: boolean
  /** Runs its children (nodes with `parent_id` = this node). */
  container?: boolean
  /** Can be the target of an edge. */
  target: boolean
  defaults(): Omit<NodeData, 'type'>
  outputs(data: NodeData): VarInfo[]
  /** Source handles before the error strategy's `fail-branch`. */
  handles(data: NodeData): Handle[]
  required(data: NodeData): FieldProblem[]
}

const SOURCE: Handle[] = [{ id: 'source', label: '' }]
const none = (): FieldProblem[] => []

const isSelector = (v: unknown): v is Selector =>
  Array.isArray(v) && v.length >= 2 && v.every((p) => typeof p === 'string' && p !== '')

function needSelector(data: NodeData, field: string): FieldProblem[] {
  return isSelector(data[field]) ? [] : [{ field, message: 'choose a variable' }]
}

function needModel(data: NodeData): FieldProblem[] {
  const model = data.model as { name?: string } | undefined
  return model?.name ? [] : [{ field: 'model.name', message: 'choose a model' }]
}

function needText(data: NodeData, field: string, what: string): FieldProblem[] {
  const v = data[field]
  return typeof v === 'string' && v.trim() ? [] : [{ field, message: `${what} is required` }]
}

const defaultModel = () => ({ provider: 'loom', name: '', mode: 'chat', completion_params: { max_tokens: 256 } })

const errorOutputs = (data: NodeData): VarInfo[] =>
  data.error_strategy ? [{ name: 'error_message', type: 'string' }, { name: 'error_type', type: 'string' }] : []

const INPUT_TYPE: Record<string, string> = {
  number: 'number', checkbox: 'boolean', json_object: 'object', file: 'file', 'file-list': 'array[file]',
}

export const NODE_SPECS: Record<NodeType, NodeSpec> = {
  start: {
    type: 'start', label: 'Start', category: 'flow', palette: true, target: false,
    defaults: () => ({ title: 'Start', variables: [] }),
    outputs: (d) => ((d.variables as { variable: string; type: string }[]) ?? [])
      .map((v) => ({ name: v.variable, type: INPUT_TYPE[v.type] ?? 'string' })),
    handles: () => SOURCE,
    required: (d) => ((d.variables as { variable: string }[]) ?? []).flatMap((v, i) =>
      /^[A-Za-z_][A-Za-z0-9_]*$/.test(v.variable ?? '')
        ? [] : [{ field: `variables.${i}.variable`, message: 'a name of letters, digits and _' }]),
  },
  end: {
    type: 'end', label: 'End', category: 'flow', palette: true, target: true,
    defaults: () => ({ title: 'End', outputs: [] }),
    outputs: () => [],
    handles: () => [],
    required: (d) => ((d.outputs as { variable: string; value_selector: unknown }[]) ?? []).flatMap((o, i) =>
      isSelector(o.value_selector) ? [] : [{ field: `outputs.${i}.value_selector`, message: 'choose a variable' }]),
  },
  answer: {
    type: 'answer', label: 'Answer', category: 'flow', palette: true, target: true,
    defaults: () => ({ title: 'Answer', answer: '' }),
    outputs: () => [{ name: 'answer', type: 'string' }],
    handles: () => SOURCE,
    required: (d) => needText(d, 'answer', 'the answer'),
  },
  llm: {
    type: 'llm', label: 'LLM', category: 'ai', palette: true, target: true,
    defaults: () => ({
      title: 'LLM', model: defaultModel(),
      prompt_template: [{ role: 'system', text: '' }, { role: 'user', text: '' }],
      context: { enabled: false },
    }),
    outputs: (d) => [
      { name: 'text', type: 'string' }, { name: 'usage', type: 'object' }, { name: 'finish_reason', type: 'string' },
      ...(d.structured_output_enabled ? [{ name: 'structured_output', type: 'object' }] : []),
      ...errorOutputs(d),
    ],
    handles: () => SOURCE,
    required: (d) => {
      const ctx = d.context as { enabled?: boolean; variable_selector?: unknown } | undefined
      return [...needModel(d),
        ...(ctx?.enabled && !isSelector(ctx.variable_selector)
          ? [{ field: 'context.variable_selector', message: 'choose the context variable' }] : [])]
    },
  },
  'knowledge-retrieval': {
    type: 'knowledge-retrieval', label: 'Knowledge retrieval', category: 'ai', palette: true, target: true,
    defaults: () => ({
      title: 'Knowledge retrieval', query_variable_selector: [], dataset_ids: [],
      retrieval_mode: 'multiple', search_method: 'default', multiple_retrieval_config: { top_k: 4 },
    }),
    outputs: (d) => [{ name: 'result', type: 'array[object]' }, ...errorOutputs(d)],
    handles: () => SOURCE,
    required: (d) => [
      ...needSelector(d, 'query_variable_selector'),
      ...((d.dataset_ids as string[] | undefined)?.length ? [] : [{ field: 'dataset_ids', message: 'choose a knowledge base' }]),
    ],
  },
  'if-else': {
    type: 'if-else', label: 'If / else', category: 'logic', palette: true, target: true,
    defaults: () => ({ title: 'If / else', cases: [{ case_id: 'true', logical_operator: 'and', conditions: [] }] }),
    outputs: () => [{ name: 'result', type: 'boolean' }, { name: 'selected_case_id', type: 'string' }],
    handles: (d) => [
      ...((d.cases as Case[]) ?? []).map((c, i) => ({ id: c.case_id, label: i === 0 ? 'IF' : `ELIF ${i}` })),
      { id: 'false', label: 'ELSE' },
    ],
    required: (d) => {
      const cases = (d.cases as Case[]) ?? []
      if (!cases.length) return [{ field: 'cases', message: 'add a case' }]
      return cases.flatMap((c) => c.conditions.flatMap((cond, i) => isSelector(cond.variable_selector)
        ? [] : [{ field: `cases.${c.case_id}.conditions.${i}`, message: 'choose a variable' }]))
    },
  },
  'question-classifier': {
    type: 'question-classifier', label: 'Question classifier', category: 'ai', palette: true, target: true,
    defaults: () => ({
      title: 'Question classifier', query_variable_selector: [], model: defaultModel(), instruction: '',
      classes: [{ id: '1', name: '' }, { id: '2', name: '' }],
    }),
    outputs: (d) => [{ name: 'class_id', type: 'string' }, { name: 'class_name', type: 'string' }, ...errorOutputs(d)],
    handles: (d) => ((d.classes as { id: string; name: string }[]) ?? [])
      .map((c, i) => ({ id: c.id, label: c.name || `Class ${i + 1}` })),
    required: (d) => [
      ...needSelector(d, 'query_variable_selector'), ...needModel(d),
      ...((d.classes as unknown[] | undefined)?.length ? [] : [{ field: 'classes', message: 'add a class' }]),
    ],
  },
  'parameter-extractor': {
    type: 'parameter-extractor', label: 'Parameter extractor', category: 'ai', palette: true, target: true,
    defaults: () => ({
      title: 'Parameter extractor', query: [], model: defaultModel(), instruction: '', reasoning_mode: 'prompt',
      parameters: [],
    }),
    outputs: (d) => [
      ...((d.parameters as { name: string; type: string }[]) ?? []).map((p) => ({ name: p.name, type: p.type })),
      { name: '__is_success', type: 'number' }, { name: '__reason', type: 'string' }, ...errorOutputs(d),
    ],
    handles: () => SOURCE,
    required: (d) => [
      ...needSelector(d, 'query'), ...needModel(d),
      ...((d.parameters as unknown[] | undefined)?.length ? [] : [{ field: 'parameters', message: 'add a parameter' }]),
    ],
  },
  code: {
    type: 'code', label: 'Code', category: 'data', palette: true, target: true,
    defaults: () => ({
      title: 'Code', code_language: 'python3', variables: [],
      code: 'def main(**inputs):\n    return {"result": ""}\n', outputs: { result: { type: 'string' } },
    }),
    outputs: (d) => [
      ...Object.entries((d.outputs as Record<string, { type?: string }>) ?? {})
        .map(([name, o]) => ({ name, type: o?.type ?? 'string' })),
      ...errorOutputs(d),
    ],
    handles: () => SOURCE,
    required: (d) => needText(d, 'code', 'code'),
  },
  'template-transform': {
    type: 'template-transform', label: 'Template', category: 'data', palette: true, target: true,
    defaults: () => ({ title: 'Template', template: '', variables: [] }),
    outputs: (d) => [{ name: 'output', type: 'string' }, ...errorOutputs(d)],
    handles: () => SOURCE,
    required: none,
  },
  'http-request': {
    type: 'http-request', label: 'HTTP request', category: 'data', palette: true, target: true,
    defaults: () => ({ title: 'HTTP request', method: 'get', url: '', headers: '', params: '', body: { type: 'none', data: '' } }),
    outputs: (d) => [
      { name: 'status_code', type: 'number' }, { name: 'body', type: 'string' }, { name: 'headers', type: 'object' },
      ...errorOutputs(d),
    ],
    handles: () => SOURCE,
    required: (d) => needText(d, 'url', 'the URL'),
  },
  tool: {
    type: 'tool', label: 'Tool', category: 'data', palette: true, target: true,
    defaults: () => ({ title: 'Tool', provider_id: '', tool_name: '', tool_parameters: {} }),
    outputs: (d) => [{ name: 'text', type: 'string' }, { name: 'json', type: 'array[object]' }, ...errorOutputs(d)],
    handles: () => SOURCE,
    required: (d) => needText(d, 'tool_name', 'the tool'),
  },
  'variable-aggregator': {
    type: 'variable-aggregator', label: 'Variable aggregator', category: 'logic', palette: true, target: true,
    defaults: () => ({ title: 'Variable aggregator', output_type: 'string', variables: [] }),
    outputs: (d) => [{ name: 'output', type: String(d.output_type ?? 'string') }],
    handles: () => SOURCE,
    required: none,
  },
  assigner: {
    type: 'assigner', label: 'Variable assigner', category: 'logic', palette: true, target: true,
    defaults: () => ({ title: 'Variable assigner', version: '2', items: [] }),
    outputs: () => [],
    handles: () => SOURCE,
    required: (d) => ((d.items as { variable_selector: unknown }[]) ?? []).flatMap((it, i) =>
      isSelector(it.variable_selector) ? [] : [{ field: `items.${i}.variable_selector`, message: 'choose a variable' }]),
  },
  iteration: {
    type: 'iteration', label: 'Iteration', category: 'logic', palette: true, container: true, target: true,
    defaults: () => ({
      title: 'Iteration', iterator_selector: [], output_selector: [], is_parallel: false, parallel_nums: 10,
      error_handle_mode: 'terminated',
    }),
    outputs: (d) => [{ name: 'output', type: 'array[any]' }, ...errorOutputs(d)],
    handles: () => SOURCE,
    required: (d) => [...needSelector(d, 'iterator_selector'), ...needSelector(d, 'output_selector')],
  },
  'iteration-start': {
    type: 'iteration-start', label: 'Iteration start', category: 'logic', palette: false, target: false,
    defaults: () => ({ title: '' }),
    outputs: () => [],
    handles: () => SOURCE,
    required: none,
  },
  loop: {
    type: 'loop', label: 'Loop', category: 'logic', palette: true, container: true, target: true,
    defaults: () => ({ title: 'Loop', loop_count: 10, break_conditions: [], logical_operator: 'and', loop_variables: [] }),
    outputs: (d) => [
      ...((d.loop_variables as { label: string; var_type?: string }[]) ?? [])
        .map((v) => ({ name: v.label, type: v.var_type ?? 'string' })),
      { name: 'loop_round', type: 'number' }, ...errorOutputs(d),
    ],
    handles: () => SOURCE,
    required: none,
  },
  'loop-start': {
    type: 'loop-start', label: 'Loop start', category: 'logic', palette: false, target: false,
    defaults: () => ({ title: '' }),
    outputs: () => [],
    handles: () => SOURCE,
    required: none,
  },
  'loop-end': {
    type: 'loop-end', label: 'Exit loop', category: 'logic', palette: true, target: true,
    defaults: () => ({ title: 'Exit loop' }),
    outputs: () => [],
    handles: () => [],
    required: none,
  },
  agent: {
    type: 'agent', label: 'Agent', category: 'ai', palette: true, target: true,
    defaults: () => ({
      title: 'Agent', model: defaultModel(), instruction: '', query: '{{#sys.query#}}', tools: [],
      strategy: 'function_calling', max_iterations: 5, tool_choice: 'auto',
    }),
    outputs: (d) => [
      { name: 'text', type: 'string' }, { name: 'iterations', type: 'number' },
      { name: 'tool_calls', type: 'array[object]' }, { name: 'usage', type: 'object' }, ...errorOutputs(d),
    ],
    handles: () => SOURCE,
    required: needModel,
  },
  'list-operator': {
    type: 'list-operator', label: 'List operator', category: 'data', palette: true, target: true,
    defaults: () => ({
      title: 'List operator', variable: [], filter_by: { enabled: false, conditions: [] },
      order_by: { enabled: false, key: '', value: 'asc' }, limit: { enabled: false, size: 10 },
      extract_by: { enabled: false, serial: '1' },
    }),
    outputs: (d) => [
      { name: 'result', type: 'array[any]' }, { name: 'first_record', type: 'any' },
      { name: 'last_record', type: 'any' }, ...errorOutputs(d),
    ],
    handles: () => SOURCE,
    required: (d) => needSelector(d, 'variable'),
  },
  'document-extractor': {
    type: 'document-extractor', label: 'Doc extractor', category: 'data', palette: true, target: true,
    defaults: () => ({ title: 'Doc extractor', variable_selector: [], is_array_file: false }),
    outputs: (d) => d.is_array_file
      ? [{ name: 'text', type: 'array[string]' }, { name: 'pages', type: 'array[number]' }, ...errorOutputs(d)]
      : [{ name: 'text', type: 'string' }, { name: 'pages', type: 'number' }, ...errorOutputs(d)],
    handles: () => SOURCE,
    required: (d) => needSelector(d, 'variable_selector'),
  },
  'human-input': {
    type: 'human-input', label: 'Human input', category: 'logic', palette: true, target: true,
    defaults: () => ({
      title: 'Human input', form_content: '', fields: [{ name: 'reply', type: 'paragraph', label: 'Reply', required: true }],
      user_actions: [], timeout: 0, timeout_unit: 'hour', answerable_by: ['service-api', 'console'],
    }),
    outputs: (d) => [
      ...((d.fields as FormField[] | undefined) ?? []).map((f) => ({
        name: f.name, type: f.type === 'number' ? 'number' : f.type === 'boolean' ? 'boolean' : 'string',
      })),
      { name: 'action_id', type: 'string' }, { name: 'timed_out', type: 'boolean' }, ...errorOutputs(d),
    ],
    handles: (d) => {
      const actions = (d.user_actions as UserAction[] | undefined) ?? []
      const own = actions.length ? actions.map((a) => ({ id: a.id, label: (a.title || a.id).toUpperCase() })) : SOURCE
      return Number(d.timeout) > 0 ? [...own, { id: 'timeout', label: 'TIMEOUT' }] : own
    },
    required: (d) => {
      const fields = (d.fields as FormField[] | undefined) ?? []
      const names = fields.map((f) => f.name)
      return [
        ...fields.flatMap((f, i) => /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(f.name ?? '')
          ? (names.indexOf(f.name) !== i ? [{ field: `fields.${i}`, message: `duplicated name '${f.name}'` }] : [])
          : [{ field: `fields.${i}`, message: 'a field name is a letter or _ then letters, digits or _' }]),
        ...fields.flatMap((f, i) => f.type === 'select' && !f.options?.length
          ? [{ field: `fields.${i}`, message: 'a select field needs options' }] : []),
        ...((d.user_actions as UserAction[] | undefined) ?? []).flatMap((a, i) =>
          /^[A-Za-z_][A-Za-z0-9_]{0,19}$/.test(a.id ?? '') && a.id !== 'timeout' ? []
            : [{ field: `user_actions.${i}`, message: 'an action id is an identifier (not "timeout")' }]),
      ]
    },
  },
}

/** A human-input form's field and action (`loom_common/dsl/human_input.py`). */
export interface FormField {
  name: string
  type: 'text' | 'paragraph' | 'number' | 'select' | 'boolean'
  label?: string
  required?: boolean
  options?: string[]
  max_length?: number
  default?: unknown
}
export interface UserAction {
  id: string
  title?: string
}

export function spec(type: string): NodeSpec | undefined {
  return (NODE_SPECS as Record<string, NodeSpec>)[type]
}

/** Every outgoing handle of a node: its own, plus `fail-branch` under that error strategy. */
export function sourceHandles(data: NodeData): Handle[] {
  const own = spec(data.type)?.handles(data) ?? SOURCE
  return data.error_strategy === 'fail-branch' ? [...own, { id: 'fail-branch', label: 'FAIL' }] : own
}

export const CONTAINER_START: Partial<Record<NodeType, NodeType>> = {
  iteration: 'iteration-start', loop: 'loop-start',
}
