/**
 * The form controls node panels are built from. Variables are chosen with native <select>s
 * (keyboard accessible, one <optgroup> per upstream node) that offer only what the node can
 * reach (graph/scope.ts); template fields insert `{{#node.var#}}` at the cursor.
 */
import { useId, useMemo, useRef, type ReactNode } from 'react'
import { useEditor, useGraph } from '../context'
import type { Selector } from '../dsl/types'
import { reachableVars, template, type VarGroup } from '../graph/scope'

export function Field({ label, children, error }: { label: string; children: ReactNode; error?: string }) {
  return (
    <label className={`ed-field${error ? ' ed-field-invalid' : ''}`}>
      <span className="ed-field-label">{label}</span>
      {children}
      {error && <span className="ed-field-error" role="alert">{error}</span>}
    </label>
  )
}

export function Section({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="ed-section">
      <header><h4>{title}</h4>{actions}</header>
      {children}
    </section>
  )
}

export function TextInput({ value, onChange, placeholder, disabled, list, ...rest }: {
  value: string; onChange: (v: string) => void; placeholder?: string; disabled?: boolean; list?: string
  'aria-label'?: string; 'data-testid'?: string
}) {
  return <input type="text" value={value ?? ''} placeholder={placeholder} disabled={disabled} list={list}
    onChange={(e) => onChange(e.target.value)} {...rest} />
}

export function NumberInput({ value, onChange, min, max, step, disabled, ...rest }: {
  value: number | undefined | null; onChange: (v: number | undefined) => void; min?: number; max?: number
  step?: number; disabled?: boolean; 'aria-label'?: string
}) {
  return <input type="number" value={value ?? ''} min={min} max={max} step={step} disabled={disabled}
    onChange={(e) => onChange(e.target.value === '' ? undefined : Number(e.target.value))} {...rest} />
}

export function Select<T extends string>({ value, options, onChange, disabled, ...rest }: {
  value: T; options: readonly (T | [T, string])[]; onChange: (v: T) => void; disabled?: boolean
  'aria-label'?: string; 'data-testid'?: string
}) {
  return (
    <select value={value} disabled={disabled} onChange={(e) => onChange(e.target.value as T)} {...rest}>
      {options.map((o) => {
        const [v, label] = Array.isArray(o) ? o : [o, o]
        return <option key={v} value={v}>{label}</option>
      })}
    </select>
  )
}

export function Check({ checked, onChange, label, disabled }: {
  checked: boolean; onChange: (v: boolean) => void; label: string; disabled?: boolean
}) {
  return (
    <label className="ed-check">
      <input type="checkbox" checked={Boolean(checked)} disabled={disabled} onChange={(e) => onChange(e.target.checked)} />
      {label}
    </label>
  )
}

/** The variables node `nodeId` can read (its own container variables too when `includeOwn`). */
export function useReachable(nodeId: string, includeOwn = false): VarGroup[] {
  const graph = useGraph()
  const { mode } = useEditor()
  return useMemo(() => reachableVars(graph, nodeId, { mode, includeOwn }), [graph, nodeId, mode, includeOwn])
}

function VarOptions({ groups }: { groups: VarGroup[] }) {
  return (
    <>
      {groups.map((g) => (
        <optgroup key={g.id} label={g.title}>
          {g.vars.map((v) => (
            <option key={v.selector.join('.')} value={v.selector.join('.')}>
              {g.id === 'sys' || g.id === 'env' || g.id === 'conversation' ? v.selector.join('.') : `${g.title} · ${v.name}`} ({v.type})
            </option>
          ))}
        </optgroup>
      ))}
    </>
  )
}

/** Choose one variable (a selector). A stored selector that is no longer reachable stays shown. */
export function VarSelect({ nodeId, value, onChange, includeOwn, disabled, ...rest }: {
  nodeId: string; value: Selector | undefined | null; onChange: (v: Selector) => void; includeOwn?: boolean
  disabled?: boolean; 'aria-label'?: string; 'data-testid'?: string
}) {
  const groups = useReachable(nodeId, includeOwn)
  const current = Array.isArray(value) ? value.join('.') : ''
  const known = groups.some((g) => g.vars.some((v) => v.selector.join('.') === current))
  return (
    <select className="ed-var-select" value={current} disabled={disabled}
      onChange={(e) => onChange(e.target.value ? e.target.value.split('.') : [])} {...rest}>
      <option value="">Choose a variable…</option>
      {current && !known && <option value={current}>{current} (not reachable)</option>}
      <VarOptions groups={groups} />
    </select>
  )
}

/** A text area for a template; the picker beside it inserts a reachable `{{#node.var#}}` at the cursor. */
export function TemplateInput({ nodeId, value, onChange, rows = 3, disabled, placeholder, ...rest }: {
  nodeId: string; value: string; onChange: (v: string) => void; rows?: number; disabled?: boolean
  placeholder?: string; 'aria-label'?: string; 'data-testid'?: string
}) {
  const ref = useRef<HTMLTextAreaElement>(null)
  const groups = useReachable(nodeId)
  const id = useId()
  const insert = (sel: string) => {
    if (!sel) return
    const el = ref.current
    const text = value ?? ''
    const at = el ? el.selectionStart ?? text.length : text.length
    const end = el ? el.selectionEnd ?? at : at
    const ref_ = template(sel.split('.'))
    onChange(text.slice(0, at) + ref_ + text.slice(end))
    requestAnimationFrame(() => {
      if (!el) return
      el.focus()
      el.setSelectionRange(at + ref_.length, at + ref_.length)
    })
  }
  return (
    <div className="ed-template">
      <textarea ref={ref} id={id} rows={rows} value={value ?? ''} disabled={disabled} placeholder={placeholder}
        onChange={(e) => onChange(e.target.value)} {...rest} />
      {!disabled && (
        <select className="ed-insert-var" value="" aria-label="Insert variable"
          data-testid={rest['data-testid'] ? `${rest['data-testid']}-insert` : undefined}
          onChange={(e) => insert(e.target.value)}>
          <option value="">{'{x}'} Insert variable…</option>
          <VarOptions groups={groups} />
        </select>
      )}
    </div>
  )
}

/** A list editor: rows with a remove button and an add button. */
export function ListEditor<T>({ items, render, onChange, make, addLabel, disabled }: {
  items: T[]; render: (item: T, set: (v: T) => void, i: number) => ReactNode; onChange: (v: T[]) => void
  make: () => T; addLabel: string; disabled?: boolean
}) {
  return (
    <div className="ed-list">
      {items.map((item, i) => (
        <div className="ed-list-row" key={i}>
          <div className="ed-list-body">{render(item, (v) => onChange(items.map((x, j) => (j === i ? v : x))), i)}</div>
          {!disabled && <button type="button" className="ed-icon-btn" aria-label={`Remove ${i + 1}`}
            onClick={() => onChange(items.filter((_, j) => j !== i))}>✕</button>}
        </div>
      ))}
      {!disabled && <button type="button" className="ed-link-btn" onClick={() => onChange([...items, make()])}>+ {addLabel}</button>}
    </div>
  )
}
