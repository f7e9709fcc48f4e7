/** Panels of the control-flow and data nodes. */
import type { Case, Condition, InputVariable, VariableBinding } from '../dsl/types'
import { OPERATORS } from '../dsl/types'
import { Check, Field, ListEditor, NumberInput, Section, Select, TemplateInput, TextInput, VarSelect } from './fields'
import { errorAt, type PanelProps } from './types'

const INPUT_TYPES = ['text-input', 'paragraph', 'select', 'number', 'checkbox', 'json_object', 'file', 'file-list'] as const

export function StartPanel({ data, set, disabled, errors }: PanelProps) {
  const vars = (data.variables as InputVariable[]) ?? []
  return (
    <Section title="Input variables">
      <ListEditor items={vars} disabled={disabled} addLabel="Variable"
        make={(): InputVariable => ({ variable: `input${vars.length + 1}`, label: '', type: 'text-input', required: true })}
        onChange={(v) => set('variables', v)}
        render={(v, put, i) => (
          <div className="ed-grid2">
            <Field label="Name" error={errors[`variables.${i}.variable`]}>
              <TextInput value={v.variable} disabled={disabled} aria-label={`Variable ${i + 1} name`}
                onChange={(variable) => put({ ...v, variable })} />
            </Field>
            <Field label="Label">
              <TextInput value={v.label ?? ''} disabled={disabled} onChange={(label) => put({ ...v, label })} />
            </Field>
            <Field label="Type">
              <Select value={v.type} options={INPUT_TYPES} disabled={disabled} onChange={(type) => put({ ...v, type })} />
            </Field>
            <Field label="Max length">
              <NumberInput value={v.max_length} min={1} disabled={disabled}
                onChange={(max_length) => put({ ...v, max_length: max_length ?? null })} />
            </Field>
            {v.type === 'select' && (
              <Field label="Options (comma separated)">
                <TextInput value={(v.options ?? []).join(', ')} disabled={disabled}
                  onChange={(s) => put({ ...v, options: s.split(',').map((x) => x.trim()).filter(Boolean) })} />
              </Field>
            )}
            <Check label="Required" checked={v.required !== false} disabled={disabled}
              onChange={(required) => put({ ...v, required })} />
          </div>
        )} />
    </Section>
  )
}

function Bindings({ id, items, onChange, disabled, label }: {
  id: string; items: VariableBinding[]; onChange: (v: VariableBinding[]) => void; disabled: boolean; label: string
}) {
  return (
    <ListEditor items={items} disabled={disabled} addLabel={label}
      make={() => ({ variable: `var${items.length + 1}`, value_selector: [] })} onChange={onChange}
      render={(b, put, i) => (
        <div className="ed-row">
          <TextInput value={b.variable} disabled={disabled} aria-label={`${label} ${i + 1} name`}
            onChange={(variable) => put({ ...b, variable })} />
          <VarSelect nodeId={id} value={b.value_selector} disabled={disabled} aria-label={`${label} ${i + 1} value`}
            onChange={(value_selector) => put({ ...b, value_selector })} />
        </div>
      )} />
  )
}

export function EndPanel({ id, data, set, disabled, errors }: PanelProps) {
  return (
    <Section title="Outputs of the run">
      <Bindings id={id} items={(data.outputs as VariableBinding[]) ?? []} disabled={disabled} label="Output"
        onChange={(v) => set('outputs', v)} />
      {errorAt(errors, 'outputs') && <p className="ed-field-error">{errorAt(errors, 'outputs')}</p>}
    </Section>
  )
}

export function AnswerPanel({ id, data, set, disabled, errors }: PanelProps) {
  return (
    <Section title="Answer">
      <Field label="Reply (streamed to the user)" error={errorAt(errors, 'answer')}>
        <TemplateInput nodeId={id} value={(data.answer as string) ?? ''} disabled={disabled} rows={4}
          aria-label="Answer" data-testid="answer-text" onChange={(v) => set('answer', v)} />
      </Field>
    </Section>
  )
}

const VALUELESS = new Set(['empty', 'not empty', 'null', 'not null', 'exists', 'not exists'])

export function Conditions({ id, conditions, onChange, disabled, includeOwn, testid }: {
  id: string; conditions: Condition[]; onChange: (c: Condition[]) => void; disabled: boolean; includeOwn?: boolean
  testid?: string
}) {
  return (
    <ListEditor items={conditions} disabled={disabled} addLabel="Condition"
      make={(): Condition => ({ variable_selector: [], comparison_operator: 'contains', value: '' })} onChange={onChange}
      render={(c, put, i) => (
        <div className="ed-condition">
          <VarSelect nodeId={id} value={c.variable_selector} includeOwn={includeOwn} disabled={disabled}
            aria-label={`Condition ${i + 1} variable`} data-testid={testid ? `${testid}-var-${i}` : undefined}
            onChange={(variable_selector) => put({ ...c, variable_selector })} />
          <Select value={c.comparison_operator} options={OPERATORS} disabled={disabled}
            aria-label={`Condition ${i + 1} operator`} data-testid={testid ? `${testid}-op-${i}` : undefined}
            onChange={(comparison_operator) => put({ ...c, comparison_operator })} />
          {!VALUELESS.has(c.comparison_operator) && (
            <TextInput value={c.value === undefined || c.value === null ? '' : String(c.value)} disabled={disabled}
              aria-label={`Condition ${i + 1} value`} data-testid={testid ? `${testid}-value-${i}` : undefined}
              onChange={(value) => put({ ...c, value })} />
          )}
        </div>
      )} />
  )
}

export function IfElsePanel({ id, data, set, disabled, errors }: PanelProps) {
  const cases = (data.cases as Case[]) ?? []
  const nextId = () => {
    for (let i = cases.length; ; i++) {
      const cid = `case${i}`
      if (!cases.some((c) => c.case_id === cid)) return cid
    }
  }
  const put = (i: number, c: Case) => set('cases', cases.map((x, j) => (j === i ? c : x)))
  return (
    <>
      {cases.map((c, i) => (
        <Section key={c.case_id} title={i === 0 ? 'IF' : `ELIF ${i}`} actions={
          !disabled && cases.length > 1 ? <button type="button" className="ed-link-btn"
            onClick={() => set('cases', cases.filter((_, j) => j !== i))}>Remove</button> : undefined}>
          <Field label="Match">
            <Select value={c.logical_operator} options={[['and', 'all conditions (AND)'], ['or', 'any condition (OR)']] as const}
              disabled={disabled} onChange={(logical_operator) => put(i, { ...c, logical_operator })} />
          </Field>
          <Conditions id={id} conditions={c.conditions} disabled={disabled} testid={`case-${i}`}
            onChange={(conditions) => put(i, { ...c, conditions })} />
          {errorAt(errors, `cases.${c.case_id}`) && <p className="ed-field-error">{errorAt(errors, `cases.${c.case_id}`)}</p>}
        </Section>
      ))}
      {!disabled && <button type="button" className="ed-link-btn"
        onClick={() => set('cases', [...cases, { case_id: nextId(), logical_operator: 'and', conditions: [] }])}>+ ELIF</button>}
      <p className="ed-muted">ELSE: when no case matches.</p>
    </>
  )
}

const OUT_TYPES = ['string', 'number', 'object', 'boolean', 'array[string]', 'array[number]', 'array[object]', 'array[boolean]'] as const

/** The inputs of code and template nodes: names bound to variables of earlier nodes. */
function InputsSection({ id, data, set, disabled }: Pick<PanelProps, 'id' | 'data' | 'set' | 'disabled'>) {
  return (
    <Section title="Inputs">
      <Bindings id={id} items={(data.variables as VariableBinding[]) ?? []} disabled={disabled} label="Input"
        onChange={(v) => set('variables', v)} />
    </Section>
  )
}

export function CodePanel({ id, data, set, disabled, errors }: PanelProps) {
  const outputs = Object.entries((data.outputs as Record<string, { type: string }>) ?? {})
  return (
    <>
      <InputsSection id={id} data={data} set={set} disabled={disabled} />
      <Section title="Code">
        <Field label="Language">
          <Select value={(data.code_language as 'python3' | 'javascript') ?? 'python3'} options={['python3', 'javascript'] as const}
            disabled={disabled} onChange={(v) => set('code_language', v)} />
        </Field>
        <Field label="main(**inputs) returns a dict" error={errorAt(errors, 'code')}>
          <textarea className="ed-code" rows={10} spellCheck={false} value={(data.code as string) ?? ''}
            disabled={disabled} aria-label="Code" onChange={(e) => set('code', e.target.value)} />
        </Field>
      </Section>
      <Section title="Outputs">
        <ListEditor items={outputs} disabled={disabled} addLabel="Output"
          make={() => [`out${outputs.length + 1}`, { type: 'string' }] as [string, { type: string }]}
          onChange={(rows) => set('outputs', Object.fromEntries(rows))}
          render={([name, o], put) => (
            <div className="ed-row">
              <TextInput value={name} disabled={disabled} aria-label="Output name" onChange={(n) => put([n, o])} />
              <Select value={o.type as (typeof OUT_TYPES)[number]} options={OUT_TYPES} disabled={disabled}
                aria-label="Output type" onChange={(type) => put([name, { ...o, type }])} />
            </div>
          )} />
      </Section>
    </>
  )
}

export function TemplatePanel({ id, data, set, disabled }: PanelProps) {
  return (
    <>
      <InputsSection id={id} data={data} set={set} disabled={disabled} />
      <Section title="Template (Jinja2)">
        <textarea className="ed-code" rows={6} value={(data.template as string) ?? ''} disabled={disabled}
          aria-label="Template" onChange={(e) => set('template', e.target.value)} />
      </Section>
    </>
  )
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head'] as const
const BODY_TYPES = ['none', 'json', 'raw-text', 'form-data', 'x-www-form-urlencoded'] as const

export function HttpPanel({ id, data, set, disabled, errors }: PanelProps) {
  const body = (data.body as { type: (typeof BODY_TYPES)[number]; data: unknown }) ?? { type: 'none', data: '' }
  return (
    <>
      <Section title="Request">
        <div className="ed-row">
          <Select value={String(data.method ?? 'get').toLowerCase() as (typeof METHODS)[number]} options={METHODS}
            disabled={disabled} aria-label="Method" onChange={(v) => set('method', v)} />
        </div>
        <Field label="URL" error={errorAt(errors, 'url')}>
          <TemplateInput nodeId={id} value={(data.url as string) ?? ''} rows={1} disabled={disabled} aria-label="URL"
            placeholder="https://…" onChange={(v) => set('url', v)} />
        </Field>
        <Field label="Headers (key: value per line)">
          <TemplateInput nodeId={id} value={(data.headers as string) ?? ''} rows={2} disabled={disabled}
            aria-label="Headers" onChange={(v) => set('headers', v)} />
        </Field>
        <Field label="Query parameters (key: value per line)">
          <TemplateInput nodeId={id} value={(data.params as string) ?? ''} rows={2} disabled={disabled}
            aria-label="Parameters" onChange={(v) => set('params', v)} />
        </Field>
      </Section>
      <Section title="Body">
        <Select value={body.type} options={BODY_TYPES} disabled={disabled} aria-label="Body type"
          onChange={(type) => set('body', { ...body, type })} />
        {body.type !== 'none' && (
          <TemplateInput nodeId={id} value={typeof body.data === 'string' ? body.data : JSON.stringify(body.data)}
            rows={4} disabled={disabled} aria-label="Body" onChange={(v) => set('body', { ...body, data: v })} />
        )}
      </Section>
    </>
  )
}

type ToolParam = { type: 'constant' | 'variable' | 'mixed'; value: unknown }

export function ToolPanel({ id, data, set, disabled, errors }: PanelProps) {
  const params = Object.entries((data.tool_parameters as Record<string, ToolParam>) ?? {})
  return (
    <>
      <Section title="Tool">
        <Field label="Tool name" error={errorAt(errors, 'tool_name')}>
          <TextInput value={(data.tool_name as string) ?? ''} disabled={disabled} placeholder="e.g. time.now"
            aria-label="Tool name" onChange={(v) => set('tool_name', v)} />
        </Field>
      </Section>
      <Section title="Parameters">
        <ListEditor items={params} disabled={disabled} addLabel="Parameter"
          make={() => [`param${params.length + 1}`, { type: 'constant', value: '' }] as [string, ToolParam]}
          onChange={(rows) => set('tool_parameters', Object.fromEntries(rows))}
          render={([name, p], put) => (
            <div className="ed-row">
              <TextInput value={name} disabled={disabled} aria-label="Parameter name" onChange={(n) => put([n, p])} />
              <Select value={p.type} options={['constant', 'variable', 'mixed'] as const} disabled={disabled}
                aria-label="Parameter kind" onChange={(type) => put([name, { type, value: type === 'variable' ? [] : '' }])} />
              {p.type === 'variable'
                ? <VarSelect nodeId={id} value={p.value as string[]} disabled={disabled} aria-label="Parameter variable"
                  onChange={(value) => put([name, { ...p, value }])} />
                : <TemplateInput nodeId={id} value={String(p.value ?? '')} rows={1} disabled={disabled}
                  aria-label="Parameter value" onChange={(value) => put([name, { ...p, value }])} />}
            </div>
          )} />
      </Section>
    </>
  )
}

export function AggregatorPanel({ id, data, set, disabled }: PanelProps) {
  const vars = (data.variables as string[][]) ?? []
  return (
    <Section title="Variables (the first with a value wins)">
      <ListEditor items={vars} disabled={disabled} addLabel="Variable" make={() => []}
        onChange={(v) => set('variables', v)}
        render={(sel, put, i) => <VarSelect nodeId={id} value={sel} disabled={disabled} aria-label={`Variable ${i + 1}`}
          onChange={put} />} />
    </Section>
  )
}

const ASSIGN_OPS = ['over-write', 'clear', 'append', 'extend', 'set', '+=', '-=', '*=', '/=', 'remove-first', 'remove-last'] as const

type AssignItem = { variable_selector: string[]; input_type: 'variable' | 'constant'; operation: (typeof ASSIGN_OPS)[number]; value: unknown }

export function AssignerPanel({ id, data, set, disabled }: PanelProps) {
  const items = (data.items as AssignItem[]) ?? []
  return (
    <Section title="Assignments (conversation or loop variables)">
      <ListEditor items={items} disabled={disabled} addLabel="Assignment"
        make={(): AssignItem => ({ variable_selector: [], input_type: 'constant', operation: 'over-write', value: '' })}
        onChange={(v) => set('items', v)}
        render={(it, put, i) => (
          <div className="ed-grid2">
            <VarSelect nodeId={id} value={it.variable_selector} disabled={disabled} aria-label={`Assignment ${i + 1} target`}
              onChange={(variable_selector) => put({ ...it, variable_selector })} />
            <Select value={it.operation} options={ASSIGN_OPS} disabled={disabled} aria-label="Operation"
              onChange={(operation) => put({ ...it, operation })} />
            <Select value={it.input_type} options={['constant', 'variable'] as const} disabled={disabled} aria-label="Value kind"
              onChange={(input_type) => put({ ...it, input_type, value: input_type === 'variable' ? [] : '' })} />
            {it.input_type === 'variable'
              ? <VarSelect nodeId={id} value={it.value as string[]} disabled={disabled} aria-label="Value variable"
                onChange={(value) => put({ ...it, value })} />
              : <TextInput value={String(it.value ?? '')} disabled={disabled} aria-label="Value"
                onChange={(value) => put({ ...it, value: value !== '' && !Number.isNaN(Number(value)) ? Number(value) : value })} />}
          </div>
        )} />
    </Section>
  )
}

export function IterationPanel({ id, data, set, disabled, errors }: PanelProps) {
  return (
    <>
      <Section title="Iterate over">
        <Field label="List variable" error={errorAt(errors, 'iterator_selector')}>
          <VarSelect nodeId={id} value={data.iterator_selector as string[]} disabled={disabled} aria-label="List variable"
            onChange={(v) => set('iterator_selector', v)} />
        </Field>
        <Field label="Collect from each round" error={errorAt(errors, 'output_selector')}>
          <VarSelect nodeId={id} includeOwn value={data.output_selector as string[]} disabled={disabled}
            aria-label="Output variable" onChange={(v) => set('output_selector', v)} />
        </Field>
      </Section>
      <Section title="Execution">
        <Check label="Run rounds in parallel" checked={Boolean(data.is_parallel)} disabled={disabled}
          onChange={(v) => set('is_parallel', v)} />
        <div className="ed-row">
          <Field label="At most at once">
            <NumberInput value={data.parallel_nums as number} min={1} max={100} disabled={disabled}
              onChange={(v) => set('parallel_nums', v ?? 10)} />
          </Field>
          <Field label="On error">
            <Select value={(data.error_handle_mode as 'terminated') ?? 'terminated'} disabled={disabled}
              options={['terminated', 'continue-on-error', 'remove-abnormal-output'] as const}
              onChange={(v) => set('error_handle_mode', v)} />
          </Field>
        </div>
      </Section>
    </>
  )
}

type LoopVar = { label: string; var_type: string; value_type: 'constant' | 'variable'; value: unknown }

export function LoopPanel({ id, data, set, disabled }: PanelProps) {
  const vars = (data.loop_variables as LoopVar[]) ?? []
  return (
    <>
      <Section title="Loop variables">
        <ListEditor items={vars} disabled={disabled} addLabel="Variable"
          make={(): LoopVar => ({ label: `v${vars.length + 1}`, var_type: 'number', value_type: 'constant', value: 0 })}
          onChange={(v) => set('loop_variables', v)}
          render={(v, put) => (
            <div className="ed-row">
              <TextInput value={v.label} disabled={disabled} aria-label="Name" onChange={(label) => put({ ...v, label })} />
              <Select value={v.var_type as 'string'} options={['string', 'number', 'boolean', 'object', 'array[string]'] as const}
                disabled={disabled} aria-label="Type" onChange={(var_type) => put({ ...v, var_type })} />
              <TextInput value={String(v.value ?? '')} disabled={disabled} aria-label="Initial value"
                onChange={(value) => put({ ...v, value: v.var_type === 'number' ? Number(value) || 0 : value })} />
            </div>
          )} />
      </Section>
      <Section title="Stop">
        <Field label="At most rounds">
          <NumberInput value={data.loop_count as number} min={1} max={1000} disabled={disabled}
            onChange={(v) => set('loop_count', v ?? 10)} />
        </Field>
        <Field label="Break when">
          <Select value={(data.logical_operator as 'and' | 'or') ?? 'and'} disabled={disabled}
            options={[['and', 'all conditions hold'], ['or', 'any condition holds']] as const}
            onChange={(v) => set('logical_operator', v)} />
        </Field>
        <Conditions id={id} includeOwn conditions={(data.break_conditions as Condition[]) ?? []} disabled={disabled}
          onChange={(c) => set('break_conditions', c)} />
      </Section>
    </>
  )
}

export function NoSettings() {
  return <p className="ed-muted">This node has no settings.</p>
}
