/** Panel of the human-input node: what the person answering sees (the content and the form's
 *  fields), the buttons that pick a branch, how long the form waits (its TIMEOUT branch), and
 *  who may answer (an app key's caller, a console editor). */
import type { FormField, UserAction } from '../dsl/nodeTypes'
import { Check, Field, ListEditor, NumberInput, Section, Select, TemplateInput, TextInput } from './fields'
import { errorAt, type PanelProps } from './types'

const FIELD_TYPES = ['text', 'paragraph', 'number', 'select', 'boolean'] as const
const UNITS = ['second', 'minute', 'hour', 'day'] as const
type Channel = 'service-api' | 'console'

export function HumanInputPanel({ id, data, set, disabled, errors }: PanelProps) {
  const fields = (data.fields as FormField[] | undefined) ?? []
  const actions = (data.user_actions as UserAction[] | undefined) ?? []
  const channels = (data.answerable_by as Channel[] | undefined) ?? ['service-api', 'console']
  const toggle = (c: Channel, on: boolean) => {
    const next = on ? [...new Set([...channels, c])] : channels.filter((x) => x !== c)
    if (next.length) set('answerable_by', next)
  }
  return (
    <>
      <Section title="Shown to the person answering">
        <TemplateInput nodeId={id} value={(data.form_content as string) ?? ''} disabled={disabled} rows={4}
          aria-label="Form content" placeholder="What they should look at, e.g. {{#sys.query#}}"
          onChange={(v) => set('form_content', v)} />
      </Section>
      <Section title="Form fields (the node's outputs)">
        <ListEditor items={fields} disabled={disabled} addLabel="Field"
          make={(): FormField => ({ name: `field_${fields.length + 1}`, type: 'text', label: '', required: true })}
          onChange={(v) => set('fields', v)}
          render={(f, put, i) => (
            <Field label={`Field ${i + 1}`} error={errorAt(errors, `fields.${i}`)}>
              <div className="ed-grid2">
                <TextInput value={f.name} disabled={disabled} aria-label={`Field ${i + 1} name`}
                  onChange={(name) => put({ ...f, name })} />
                <Select value={f.type} options={FIELD_TYPES} disabled={disabled} aria-label={`Field ${i + 1} type`}
                  onChange={(type) => put({ ...f, type })} />
                <TextInput value={f.label ?? ''} placeholder="Label" disabled={disabled}
                  aria-label={`Field ${i + 1} label`} onChange={(label) => put({ ...f, label })} />
                <Check label="Required" checked={f.required !== false} disabled={disabled}
                  onChange={(required) => put({ ...f, required })} />
              </div>
              {f.type === 'select' && (
                <TextInput value={(f.options ?? []).join(',')} placeholder="Options, comma separated" disabled={disabled}
                  aria-label={`Field ${i + 1} options`}
                  onChange={(v) => put({ ...f, options: v.split(',').map((o) => o.trim()).filter(Boolean) })} />
              )}
            </Field>
          )} />
      </Section>
      <Section title="Buttons (one branch each; none: one branch)">
        <ListEditor items={actions} disabled={disabled} addLabel="Button"
          make={(): UserAction => ({ id: `action_${actions.length + 1}`, title: '' })}
          onChange={(v) => set('user_actions', v)}
          render={(a, put, i) => (
            <Field label={`Button ${i + 1}`} error={errorAt(errors, `user_actions.${i}`)}>
              <div className="ed-grid2">
                <TextInput value={a.id} disabled={disabled} aria-label={`Button ${i + 1} id`}
                  onChange={(v) => put({ ...a, id: v })} />
                <TextInput value={a.title ?? ''} placeholder="Title" disabled={disabled}
                  aria-label={`Button ${i + 1} title`} onChange={(title) => put({ ...a, title })} />
              </div>
            </Field>
          )} />
      </Section>
      <Section title="Waiting">
        <div className="ed-row">
          <Field label="Timeout (0: waits for ever)" error={errorAt(errors, 'timeout')}>
            <NumberInput value={(data.timeout as number | undefined) ?? 0} min={0} disabled={disabled}
              aria-label="Human input timeout" onChange={(v) => set('timeout', v ?? 0)} />
          </Field>
          <Field label="Unit">
            <Select value={((data.timeout_unit as string) ?? 'hour') as (typeof UNITS)[number]} options={UNITS}
              disabled={disabled} aria-label="Timeout unit" onChange={(v) => set('timeout_unit', v)} />
          </Field>
        </div>
        <Check label="Answerable through the service API (app key)" checked={channels.includes('service-api')}
          disabled={disabled} onChange={(on) => toggle('service-api', on)} />
        <Check label="Answerable in the console (editors and above)" checked={channels.includes('console')}
          disabled={disabled} onChange={(on) => toggle('console', on)} />
      </Section>
    </>
  )
}
