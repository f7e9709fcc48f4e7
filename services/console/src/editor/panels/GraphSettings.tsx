/** The side panel when no node is selected: conversation and environment variables, and the
 *  list of the graph's problems (a click selects the offending node). */
import { memo } from 'react'
import type { AppMode, ConversationVariable, EnvironmentVariable, Graph } from '../dsl/types'
import type { GraphMeta } from '../graph/convert'
import type { Problem } from '../graph/validate'
import { useEditor } from '../context'
import { ListEditor, Section, Select, TextInput } from './fields'

const CONV_TYPES = ['string', 'number', 'object', 'boolean', 'array[string]', 'array[number]', 'array[object]', 'array[any]'] as const

function parseValue(type: string, text: string): unknown {
  if (type === 'string') return text
  try {
    return JSON.parse(text)
  } catch {
    return type === 'number' ? 0 : text
  }
}

export const GraphSettings = memo(function GraphSettings({ graph, mode, problems, onChange, onSelectNode }: {
  graph: Graph; mode: AppMode; problems: Problem[]; onChange: (patch: Partial<GraphMeta>, tag: string) => void
  onSelectNode: (id: string) => void
}) {
  const { canEdit } = useEditor()
  const conv = graph.conversation_variables ?? []
  const env = graph.environment_variables ?? []
  const chat = ['chat', 'chatflow', 'agent'].includes(mode)
  return (
    <aside className="ed-panel" aria-label="Graph settings" data-testid="graph-settings">
      <header className="ed-panel-head"><h3>Workflow</h3></header>
      <div className="ed-panel-body">
        <Section title={`Problems (${problems.length})`}>
          {problems.length === 0 ? <p className="ed-muted">None found.</p> : (
            <ul className="ed-problems" data-testid="all-problems">
              {problems.map((p, i) => (
                <li key={i}>
                  {p.nodeId ? <button type="button" className="ed-link-btn" onClick={() => onSelectNode(p.nodeId!)}>{p.nodeId}</button> : null}
                  {p.field ? <code> {p.field}</code> : null} {p.message}
                </li>
              ))}
            </ul>
          )}
        </Section>
        {chat && (
          <Section title="Conversation variables">
            <p className="ed-muted">Kept between turns of one conversation; read as {'{{#conversation.name#}}'}, written by a variable assigner.</p>
            <ListEditor<ConversationVariable> items={conv} disabled={!canEdit} addLabel="Conversation variable"
              make={() => ({ name: `var${conv.length + 1}`, value_type: 'string', value: '' })}
              onChange={(v) => onChange({ conversation_variables: v }, 'conv')}
              render={(v, put, i) => (
                <div className="ed-row">
                  <TextInput value={v.name} disabled={!canEdit} aria-label={`Conversation variable ${i + 1} name`}
                    onChange={(name) => put({ ...v, name })} />
                  <Select value={v.value_type as (typeof CONV_TYPES)[number]} options={CONV_TYPES} disabled={!canEdit}
                    aria-label="Type" onChange={(value_type) => put({ ...v, value_type })} />
                  <TextInput value={typeof v.value === 'string' ? v.value : JSON.stringify(v.value ?? '')} disabled={!canEdit}
                    aria-label="Initial value" onChange={(t) => put({ ...v, value: parseValue(v.value_type, t) })} />
                </div>
              )} />
          </Section>
        )}
        <Section title="Environment variables">
          <ListEditor<EnvironmentVariable> items={env} disabled={!canEdit} addLabel="Environment variable"
            make={() => ({ name: `ENV${env.length + 1}`, value_type: 'string', value: '' })}
            onChange={(v) => onChange({ environment_variables: v }, 'env')}
            render={(v, put, i) => (
              <div className="ed-row">
                <TextInput value={v.name} disabled={!canEdit} aria-label={`Environment variable ${i + 1} name`}
                  onChange={(name) => put({ ...v, name })} />
                <Select value={v.value_type} options={['string', 'number', 'secret'] as const} disabled={!canEdit}
                  aria-label="Type" onChange={(value_type) => put({ ...v, value_type })} />
                <TextInput value={String(v.value ?? '')} disabled={!canEdit} aria-label="Value"
                  onChange={(t) => put({ ...v, value: v.value_type === 'number' ? Number(t) || 0 : t })} />
              </div>
            )} />
        </Section>
      </div>
    </aside>
  )
})
