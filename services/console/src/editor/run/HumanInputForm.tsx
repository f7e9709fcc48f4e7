/**
 * A paused run's human-input form (the debugger's and the run view's): the content the node
 * rendered, one control per field, one button per action. Submitting answers it through the
 * console route (editors and above; audit-logged); the gateway's 400 names the field, shown
 * under it, and a 409 (answered already, timed out) is shown as the form's error.
 */
import { useState } from 'react'
import { api, ApiError } from '../../app/api'
import { typedValues, type HumanInputForm as Form } from './humanInput'

export function HumanInputForm({ form, base, runId, canAnswer, onAnswered }: {
  form: Form; base: string; runId: string; canAnswer: boolean; onAnswered: () => void
}) {
  const [raw, setRaw] = useState<Record<string, string>>({})
  const [error, setError] = useState<{ field?: string; message: string } | null>(null)
  const [sending, setSending] = useState(false)
  const actions = form.user_actions?.length ? form.user_actions : [{ id: '', title: 'Submit' }]
  const submit = async (action: string) => {
    setSending(true)
    setError(null)
    try {
      await api('POST', `${base}/runs/${runId}/human-inputs/${form.form_id}`, {
        inputs: typedValues(form.fields ?? [], raw), ...(action ? { action } : {}),
      })
      onAnswered()
    } catch (err) {
      setError(err instanceof ApiError ? { field: err.field, message: err.message } : { message: String(err) })
    } finally {
      setSending(false)
    }
  }
  const expires = form.expiration_time ? new Date(form.expiration_time * 1000).toLocaleString() : null
  return (
    <form className="ed-human-form" data-testid={`human-form-${form.node_id}`} onSubmit={(e) => e.preventDefault()}>
      <h5>{form.node_title || form.node_id}{expires && <span className="ed-muted"> · until {expires}</span>}</h5>
      {form.form_content && <p className="ed-human-content" style={{ whiteSpace: 'pre-wrap' }}>{form.form_content}</p>}
      {(form.fields ?? []).map((f) => {
        const id = `hi-${form.form_id}-${f.name}`
        const set = (v: string) => setRaw({ ...raw, [f.name]: v })
        const fieldError = error?.field === `inputs.${f.name}` ? error.message : undefined
        return (
          <label key={f.name} className={`ed-field${fieldError ? ' ed-field-invalid' : ''}`} htmlFor={id}>
            <span className="ed-field-label">{f.label || f.name}{f.required !== false ? ' *' : ''}</span>
            {f.type === 'paragraph' ? (
              <textarea id={id} rows={3} value={raw[f.name] ?? ''} disabled={!canAnswer} onChange={(e) => set(e.target.value)} />
            ) : f.type === 'select' ? (
              <select id={id} value={raw[f.name] ?? ''} disabled={!canAnswer} onChange={(e) => set(e.target.value)}>
                <option value="" />
                {(f.options ?? []).map((o) => <option key={o}>{o}</option>)}
              </select>
            ) : f.type === 'boolean' ? (
              <input id={id} type="checkbox" checked={raw[f.name] === 'true'} disabled={!canAnswer}
                onChange={(e) => set(String(e.target.checked))} />
            ) : (
              <input id={id} type={f.type === 'number' ? 'number' : 'text'} value={raw[f.name] ?? ''} disabled={!canAnswer}
                onChange={(e) => set(e.target.value)} />
            )}
            {fieldError && <span className="ed-field-error" role="alert">{fieldError}</span>}
          </label>
        )
      })}
      <div className="ed-row">
        {actions.map((a) => (
          <button key={a.id || 'submit'} type="button" className="ed-btn ed-primary" disabled={!canAnswer || sending}
            data-testid={`human-action-${a.id || 'submit'}`} onClick={() => void submit(a.id)}>
            {a.title || a.id}
          </button>
        ))}
      </div>
      {error && !error.field?.startsWith('inputs.') && <p className="ed-field-error" role="alert">{error.message}</p>}
      {!canAnswer && <p className="ed-muted">Editors and above can answer this form.</p>}
    </form>
  )
}
