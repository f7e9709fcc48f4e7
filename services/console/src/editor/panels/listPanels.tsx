/** Panels of the list and file nodes: list-operator (Dify's filter, pick, sort and first N) and
 *  document-extractor (the text of a run's files). */
import { Check, Field, ListEditor, NumberInput, Section, Select, TextInput, VarSelect } from './fields'
import { errorAt, type PanelProps } from './types'

const LIST_OPS = ['contains', 'not contains', 'start with', 'end with', 'is', 'is not', 'in', 'not in', 'empty',
  'not empty', '=', '≠', '<', '>', '≤', '≥'] as const
const FILE_KEYS = ['', 'name', 'type', 'extension', 'mime_type', 'transfer_method', 'url', 'size'] as const

type FilterCondition = { key: string; comparison_operator: (typeof LIST_OPS)[number]; value: string | string[] }
type Toggle = { enabled?: boolean }

export function ListOperatorPanel({ id, data, set, disabled, errors }: PanelProps) {
  const filter = (data.filter_by as Toggle & { conditions?: FilterCondition[] }) ?? {}
  const order = (data.order_by as Toggle & { key?: string; value?: 'asc' | 'desc' }) ?? {}
  const limit = (data.limit as Toggle & { size?: number }) ?? {}
  const extract = (data.extract_by as Toggle & { serial?: string }) ?? {}
  const conditions = filter.conditions ?? []
  return (
    <>
      <Section title="List (strings, numbers or files)">
        <Field label="Variable" error={errorAt(errors, 'variable')}>
          <VarSelect nodeId={id} value={(data.variable as string[]) ?? []} disabled={disabled} aria-label="List variable"
            onChange={(v) => set('variable', v)} />
        </Field>
      </Section>
      <Section title="Filter">
        <Check label="Filter" checked={Boolean(filter.enabled)} disabled={disabled}
          onChange={(on) => set('filter_by', { ...filter, conditions, enabled: on })} />
        {filter.enabled && (
          <ListEditor items={conditions} disabled={disabled} addLabel="Condition"
            make={(): FilterCondition => ({ key: '', comparison_operator: 'contains', value: '' })}
            onChange={(v) => set('filter_by', { ...filter, conditions: v })}
            render={(c, put, i) => (
              <div className="ed-grid2">
                <Select value={c.key as (typeof FILE_KEYS)[number]} options={FILE_KEYS} disabled={disabled}
                  aria-label={`Condition ${i + 1} file key`} onChange={(key) => put({ ...c, key })} />
                <Select value={c.comparison_operator} options={LIST_OPS} disabled={disabled}
                  aria-label={`Condition ${i + 1} operator`} onChange={(comparison_operator) => put({ ...c, comparison_operator })} />
                <TextInput value={Array.isArray(c.value) ? c.value.join(',') : String(c.value ?? '')} disabled={disabled}
                  aria-label={`Condition ${i + 1} value`}
                  onChange={(value) => put({ ...c, value: c.comparison_operator.endsWith('in') ? value.split(',') : value })} />
              </div>
            )} />
        )}
      </Section>
      <Section title="Pick, sort, first N">
        <Check label="Take the n-th item" checked={Boolean(extract.enabled)} disabled={disabled}
          onChange={(on) => set('extract_by', { serial: '1', ...extract, enabled: on })} />
        {extract.enabled && (
          <Field label="Position (1 = first)">
            <TextInput value={extract.serial ?? '1'} disabled={disabled} aria-label="Position"
              onChange={(serial) => set('extract_by', { ...extract, serial })} />
          </Field>
        )}
        <Check label="Sort" checked={Boolean(order.enabled)} disabled={disabled}
          onChange={(on) => set('order_by', { key: '', value: 'asc', ...order, enabled: on })} />
        {order.enabled && (
          <div className="ed-row">
            <Select value={(order.key ?? '') as (typeof FILE_KEYS)[number]} options={FILE_KEYS} disabled={disabled}
              aria-label="Sort by file key" onChange={(key) => set('order_by', { ...order, key })} />
            <Select value={order.value ?? 'asc'} options={['asc', 'desc'] as const} disabled={disabled}
              aria-label="Sort order" onChange={(value) => set('order_by', { ...order, value })} />
          </div>
        )}
        <Check label="Keep the first N" checked={Boolean(limit.enabled)} disabled={disabled}
          onChange={(on) => set('limit', { size: 10, ...limit, enabled: on })} />
        {limit.enabled && (
          <Field label="N" error={errorAt(errors, 'limit')}>
            <NumberInput value={limit.size ?? 10} min={-1} disabled={disabled} aria-label="First N"
              onChange={(size) => set('limit', { ...limit, size: size ?? 10 })} />
          </Field>
        )}
      </Section>
    </>
  )
}

export function DocumentExtractorPanel({ id, data, set, disabled, errors }: PanelProps) {
  return (
    <Section title="Files (PDF, DOCX, HTML, Markdown, TXT, CSV; images and scans by OCR)">
      <Field label="File variable" error={errorAt(errors, 'variable_selector')}>
        <VarSelect nodeId={id} value={(data.variable_selector as string[]) ?? []} disabled={disabled}
          aria-label="File variable" onChange={(v) => set('variable_selector', v)} />
      </Field>
      <Check label="A list of files" checked={Boolean(data.is_array_file)} disabled={disabled}
        onChange={(on) => set('is_array_file', on)} />
    </Section>
  )
}
