/**
 * Debug and preview of the draft: a chat preview (chat, chatflow, agent) or a run form
 * (workflow, completion) that runs the saved draft through `POST .../draft/run` and folds its
 * SSE events into the trace (nodes light up on the canvas as they run); the list of nodes that
 * ran with their status, time and tokens; an agent's rounds; the form of a run paused on a
 * human-input node (answered here, then followed to its end); and any past run's trace.
 */
import { memo, useRef, useState } from 'react'
import { useQuery, useQueryClient } from '@tanstack/react-query'
import { api, ApiError, stream } from '../../app/api'
import { useEditor } from '../context'
import { AnswerText } from '../../app/AnswerText'
import type { AppMode, Graph, InputVariable } from '../dsl/types'
import { Field, Section, TextInput } from '../panels/fields'
import { TraceView } from '../panels/NodePanel'
import { HumanInputForm } from '../run/HumanInputForm'
import { emptyTrace, fold, foldAll, roundCalls, type RunTrace } from '../run/trace'

interface Turn { query: string; answer: string; error?: string }
interface PastRun { id: string; status: string; created_at: number; invoke_from?: string; total_tokens?: number }

export const DebugPanel = memo(function DebugPanel({ mode, graph, trace, setTrace, beforeRun, base, onSelectNode, onClose, canEdit }: {
  mode: AppMode; graph: Graph; trace: RunTrace; setTrace: (f: (t: RunTrace) => RunTrace) => void
  beforeRun: () => Promise<boolean>; base: string; onSelectNode: (id: string) => void; onClose: () => void; canEdit: boolean
}) {
  const chat = ['chat', 'chatflow', 'agent'].includes(mode)
  const start = graph.nodes.find((n) => n.data.type === 'start' && !n.parent_id)
  const form = ((start?.data.variables as InputVariable[]) ?? []).filter((v) => !(mode === 'completion' && v.variable === 'query'))
  const [inputs, setInputs] = useState<Record<string, string>>({})
  const [query, setQuery] = useState('')
  const [turns, setTurns] = useState<Turn[]>([])
  const [conversationId, setConversationId] = useState<string | undefined>()
  const [error, setError] = useState('')
  // The app's latest runs, read once "Load" is pressed; a finished debug run refreshes them (and
  // the Logs tab's list, which shares the ['runs', appId] prefix).
  const [showPast, setShowPast] = useState(false)
  const queryClient = useQueryClient()
  const { appId } = useEditor()
  const runsKey = ['runs', appId, 'latest']
  const pastRuns = useQuery({
    queryKey: runsKey,
    queryFn: () => api<{ data: PastRun[] }>('GET', `${base}/runs?limit=10`),
    enabled: showPast,
  })
  const past = showPast ? pastRuns.data?.data ?? null : null
  const abort = useRef<AbortController | null>(null)
  const running = trace.status === 'running'

  const typed = () => Object.fromEntries(form.map((v) => {
    const raw = inputs[v.variable] ?? ''
    if (v.type === 'number') return [v.variable, raw === '' ? undefined : Number(raw)]
    if (v.type === 'checkbox') return [v.variable, raw === 'true']
    if (v.type === 'json_object') {
      try {
        return [v.variable, JSON.parse(raw || '{}')]
      } catch {
        return [v.variable, raw]
      }
    }
    return [v.variable, raw]
  }).filter(([, value]) => value !== undefined && value !== ''))

  const run = async () => {
    setError('')
    if (!(await beforeRun())) {
      setError('The draft could not be saved: fix the problems marked on the nodes, then run again.')
      return
    }
    const q = query
    if (chat) setTurns((t) => [...t, { query: q, answer: '' }])
    setQuery('')
    let local: RunTrace = { ...emptyTrace(), status: 'running' }
    setTrace(() => local)
    abort.current = new AbortController()
    try {
      await stream(`${base}/draft/run`, {
        inputs: typed(), ...(chat || mode === 'completion' ? { query: q } : {}),
        ...(chat && conversationId ? { conversation_id: conversationId } : {}),
      }, (ev) => {
        local = fold(local, ev)
        setTrace(() => local)
        if (chat) setTurns((t) => t.map((turn, i) => (i === t.length - 1 ? { ...turn, answer: local.answer } : turn)))
      }, abort.current.signal)
      if (local.conversationId) setConversationId(local.conversationId)
      if (local.status === 'running') {
        local = { ...local, status: local.error ? 'failed' : 'succeeded' }
        setTrace(() => local)
      }
      void queryClient.invalidateQueries({ queryKey: runsKey.slice(0, 2) })
      if (chat && local.error) setTurns((t) => t.map((turn, i) => (i === t.length - 1 ? { ...turn, error: local.error } : turn)))
    } catch (err) {
      const message = err instanceof ApiError ? err.message : (err as Error).name === 'AbortError' ? 'stopped' : String(err)
      setError(message)
      setTrace((t) => ({ ...t, status: 'failed', error: message }))
    }
  }

  const loadPast = () => {
    if (showPast) void pastRuns.refetch()
    else setShowPast(true)
  }
  // A paused run, answered: read its stored events until it ends or pauses again (the console's
  // run events are a JSON list, not a stream).
  const follow = async (runId: string, answered: string) => {
    for (let i = 0; i < 600; i++) {
      try {
        const got = await api<{ data: Record<string, unknown>[]; status: string }>('GET', `${base}/runs/${runId}/events`)
        const t = foldAll(got.data)
        const settled = !['running', 'paused'].includes(got.status)
          || (t.status === 'paused' && (t.forms ?? []).some((f) => f.form_id !== answered))
        if (settled || i === 599) {
          setTrace(() => t)
          if (chat) setTurns((all) => all.map((turn, j) => (j === all.length - 1 ? { ...turn, answer: t.answer } : turn)))
          if (settled) return
        }
      } catch (err) {
        setError((err as Error).message)
        return
      }
      await new Promise((r) => setTimeout(r, 1000))
    }
  }

  const openPast = async (id: string) => {
    try {
      const { data } = await api<{ data: Record<string, unknown>[] }>('GET', `${base}/runs/${id}/events`)
      setTrace(() => foldAll(data))
    } catch (err) {
      setError((err as Error).message)
    }
  }

  const order = trace.order.filter((id) => trace.nodes[id])
  return (
    <aside className="ed-panel ed-debug" aria-label="Debug and preview" data-testid="debug-panel">
      <header className="ed-panel-head">
        <h3>{chat ? 'Preview' : 'Test run'}</h3>
        <span className={`ed-status ed-status-${trace.status}`} data-testid="run-status">{trace.status}</span>
        <button type="button" className="ed-icon-btn" aria-label="Close debug panel" onClick={onClose}>✕</button>
      </header>
      <div className="ed-panel-body">
        {form.length > 0 && (
          <Section title="Inputs">
            {form.map((v) => (
              <Field key={v.variable} label={`${v.label || v.variable}${v.required !== false ? ' *' : ''}`}>
                {v.type === 'select' ? (
                  <select value={inputs[v.variable] ?? ''} onChange={(e) => setInputs({ ...inputs, [v.variable]: e.target.value })}>
                    <option value="" />
                    {(v.options ?? []).map((o) => <option key={o}>{o}</option>)}
                  </select>
                ) : v.type === 'paragraph' || v.type === 'json_object' ? (
                  <textarea rows={3} value={inputs[v.variable] ?? ''} aria-label={v.variable}
                    onChange={(e) => setInputs({ ...inputs, [v.variable]: e.target.value })} />
                ) : (
                  <TextInput value={inputs[v.variable] ?? ''} aria-label={v.variable} data-testid={`run-input-${v.variable}`}
                    onChange={(s) => setInputs({ ...inputs, [v.variable]: s })} />
                )}
              </Field>
            ))}
          </Section>
        )}
        {chat ? (
          <Section title="Chat">
            <div className="ed-chat" data-testid="chat">
              {turns.map((t, i) => (
                <div key={i}>
                  <p className="ed-msg ed-msg-user">{t.query}</p>
                  <p className="ed-msg ed-msg-bot" data-testid="chat-answer">{t.answer ? <AnswerText answer={t.answer} /> : (running && i === turns.length - 1 ? '…' : '')}</p>
                  {t.error && <p className="ed-field-error">{t.error}</p>}
                </div>
              ))}
            </div>
            <form className="ed-row" onSubmit={(e) => { e.preventDefault(); if (query.trim() && !running) void run() }}>
              <TextInput value={query} onChange={setQuery} placeholder="Ask something…" aria-label="Message"
                data-testid="chat-input" disabled={!canEdit} />
              <button type="submit" className="ed-btn ed-primary" disabled={running || !query.trim()} data-testid="chat-send">Send</button>
            </form>
            {turns.length > 0 && <button type="button" className="ed-link-btn" onClick={() => { setTurns([]); setConversationId(undefined) }}>
              New conversation</button>}
          </Section>
        ) : (
          <>
            {mode === 'completion' && (
              <Field label="Query"><TextInput value={query} onChange={setQuery} aria-label="Query" /></Field>
            )}
            <button type="button" className="ed-btn ed-primary" disabled={running} onClick={() => void run()} data-testid="run-draft">
              {running ? 'Running…' : 'Run draft'}
            </button>
            {trace.outputs && <><h5>Outputs</h5><pre className="ed-json" data-testid="run-outputs">{JSON.stringify(trace.outputs, null, 2)}</pre></>}
          </>
        )}
        {running && <button type="button" className="ed-link-btn" onClick={() => abort.current?.abort()}>Stop watching</button>}
        {trace.status === 'paused' && trace.runId && (trace.forms ?? []).length > 0 && (
          <Section title="Waiting for a person">
            {(trace.forms ?? []).map((f) => (
              <HumanInputForm key={f.form_id} form={f} base={base} runId={trace.runId!} canAnswer={canEdit}
                onAnswered={() => { setTrace((t) => ({ ...t, status: 'running', forms: [] })); void follow(trace.runId!, f.form_id) }} />
            ))}
          </Section>
        )}
        {(error || trace.error) && <p className="ed-field-error" role="alert">{error || trace.error}</p>}
        {trace.rounds.length > 0 && (
          <Section title="Agent rounds">
            <ol className="ed-rounds" data-testid="agent-rounds">
              {trace.rounds.map((r) => (
                <li key={r.position} data-testid={`agent-round-${r.position}`}>
                  {r.thought && <p><strong>Thought:</strong> {r.thought}</p>}
                  {roundCalls(r).map((c, i) => (
                    <div key={i} className="ed-round-call">
                      <p><strong>Tool call:</strong> <code>{c.tool}</code>{c.input && <> <code>{c.input}</code></>}</p>
                      {c.observation && <p><strong>Observation:</strong> <code>{c.observation}</code></p>}
                    </div>
                  ))}
                  {!r.thought && !r.tool && <p className="ed-muted">(no text)</p>}
                </li>
              ))}
            </ol>
          </Section>
        )}
        <Section title={`Trace${trace.totalTokens ? ` · ${trace.totalTokens} tokens` : ''}`}>
          {order.length === 0 && <p className="ed-muted">{trace.status === 'idle' || trace.status === 'running'
            ? 'Run the draft to see each node\'s inputs and outputs.'
            : 'This run streamed no node events (chat and agent apps answer with messages and agent rounds).'}</p>}
          <ol className="ed-trace-list" data-testid="trace-list">
            {order.map((id) => {
              const t = trace.nodes[id]
              return (
                <li key={id} data-testid={`trace-row-${id}`} data-status={t.status}>
                  <details>
                    <summary>
                      <span className={`ed-status ed-status-${t.status}`}>{t.status}</span>{' '}
                      <button type="button" className="ed-link-btn" onClick={() => onSelectNode(id)}>{t.title}</button>
                      {t.elapsedS !== undefined && <> · {(t.elapsedS * 1000).toFixed(0)} ms</>}
                      {t.tokens ? <> · {t.tokens} tok</> : null}
                    </summary>
                    <TraceView trace={t} />
                  </details>
                </li>
              )
            })}
          </ol>
        </Section>
        <Section title="Past runs" actions={<button type="button" className="ed-link-btn" onClick={loadPast}>Load</button>}>
          {showPast && pastRuns.isPending && <p className="ed-muted" role="status">Loading…</p>}
          {showPast && pastRuns.error && <p className="ed-field-error" role="alert">{pastRuns.error.message}</p>}
          {past?.length === 0 && <p className="ed-muted">No runs yet.</p>}
          <ul>
            {past?.map((r) => (
              <li key={r.id}>
                <button type="button" className="ed-link-btn" onClick={() => void openPast(r.id)}>
                  {new Date(r.created_at * 1000).toLocaleTimeString()} · {r.status}{r.invoke_from ? ` · ${r.invoke_from}` : ''}
                </button>
              </li>
            ))}
          </ul>
        </Section>
      </div>
    </aside>
  )
})
