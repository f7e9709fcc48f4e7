/**
 * Human-input forms of a paused run, as the console shows them: the open forms from a run's
 * events (each `human_input_required` carries its form; the node's `node_finished` closes it,
 * `workflow_finished` closes all) and the typed values to submit. The gateway checks the values
 * again (`POST .../runs/{id}/human-inputs/{form_id}`, a 400 names the field): this is only so
 * the form sends numbers and booleans as such.
 */
import type { FormField, UserAction } from '../dsl/nodeTypes'

export interface HumanInputForm {
  form_id: string
  node_id: string
  node_title?: string
  form_content: string
  fields: FormField[]
  user_actions: UserAction[]
  answerable_by?: string[]
  /** Epoch seconds after which the form times out (its TIMEOUT branch runs); null: never. */
  expiration_time?: number | null
}

type Ev = Record<string, unknown> & { event?: string; data?: Record<string, unknown> }

/** The forms the run still waits for, oldest first. */
export function openForms(events: Ev[]): HumanInputForm[] {
  const open = new Map<string, HumanInputForm>()
  for (const ev of events) {
    const d = (ev.data ?? {}) as Record<string, unknown>
    if (ev.event === 'human_input_required' && typeof d.form_id === 'string') {
      open.set(d.form_id, d as unknown as HumanInputForm)
    } else if (ev.event === 'node_finished') {
      open.delete(String(d.id))
    } else if (ev.event === 'workflow_finished') {
      open.clear()
    }
  }
  return [...open.values()]
}

/** What the person typed, by field, as the form's types want it; blank optional fields left out. */
export function typedValues(fields: FormField[], raw: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const f of fields) {
    const v = raw[f.name]
    if (f.type === 'boolean') {
      out[f.name] = v === 'true'
      continue
    }
    if (v === undefined || v === '') continue
    out[f.name] = f.type === 'number' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v
  }
  return out
}
