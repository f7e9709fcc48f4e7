import { describe, expect, it } from 'vitest'
import { openForms, typedValues } from './humanInput'

const form = (id: string) => ({
  event: 'human_input_required',
  data: { form_id: id, node_id: 'agent', form_content: 'Reply?', fields: [{ name: 'reply', type: 'paragraph' }],
    user_actions: [{ id: 'send', title: 'Send' }] },
})

describe('human-input forms', () => {
  it('keeps the forms a run waits for and drops those its node finished', () => {
    expect(openForms([form('f1'), form('f2'), { event: 'workflow_paused', data: {} }]).map((f) => f.form_id))
      .toEqual(['f1', 'f2'])
    expect(openForms([form('f1'), form('f2'), { event: 'node_finished', data: { id: 'f1', node_id: 'agent' } }])
      .map((f) => f.form_id)).toEqual(['f2'])
    expect(openForms([form('f1'), { event: 'workflow_finished', data: { status: 'failed' } }])).toEqual([])
    // Announced again when a paused run pauses anew: still one form.
    expect(openForms([form('f1'), form('f1')])).toHaveLength(1)
  })

  it('types the values as the form wants them', () => {
    const fields = [
      { name: 'reply', type: 'paragraph' as const }, { name: 'score', type: 'number' as const },
      { name: 'ok', type: 'boolean' as const }, { name: 'note', type: 'text' as const, required: false },
    ]
    expect(typedValues(fields, { reply: 'hi', score: '4', ok: 'true', note: '' })).toEqual({ reply: 'hi', score: 4, ok: true })
    // Not a number: sent as typed, for the gateway to refuse naming the field.
    expect(typedValues(fields, { reply: 'hi', score: 'many' })).toEqual({ reply: 'hi', score: 'many', ok: false })
  })
})
