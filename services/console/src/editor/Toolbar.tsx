/** The editor's toolbar: save state, undo/redo, layout, fit, DSL export, versions, debug, publish. */
import { memo, useState } from 'react'
import { useQuery } from '@tanstack/react-query'
import { api } from '../app/api'
import type { AppDoc, AppMode } from './dsl/types'

export type SaveState = 'saved' | 'dirty' | 'saving' | 'invalid' | 'conflict' | 'error'

const SAVE_TEXT: Record<SaveState, string> = {
  saved: 'All changes saved', dirty: 'Unsaved changes…', saving: 'Saving…', invalid: 'Not saved: the gateway found problems',
  conflict: 'Not saved: conflict', error: 'Not saved',
}

interface Version { version: number; published_by?: string | null; published_at: number }

function Versions({ base, onRestore, onNotice, canEdit }: {
  base: string; onRestore: (d: AppDoc) => void; onNotice: (s: string) => void; canEdit: boolean
}) {
  const [open, setOpen] = useState(false)
  // Read when the list opens (and again on each opening: a publish may have added one).
  const versions = useQuery({
    queryKey: ['versions', base],
    queryFn: () => api<{ data: Version[] }>('GET', `${base}/versions`),
    enabled: open,
    staleTime: 0,
  })
  const list = open ? versions.data?.data : undefined
  const error = open && versions.error ? versions.error.message : ''
  const restore = async (v: number) => {
    try {
      // The version's document as JSON (GET .../versions/{n}); restoring makes it the draft.
      const { dsl } = await api<{ dsl: AppDoc }>('GET', `${base}/versions/${v}`)
      onRestore(dsl)
      onNotice(`Version ${v} restored into the draft.`)
      setOpen(false)
    } catch (err) {
      onNotice(`Could not restore version ${v}: ${(err as Error).message}`)
    }
  }
  return (
    <div className="ed-menu">
      <button type="button" className="ed-btn" onClick={() => setOpen((o) => !o)}
        aria-expanded={open} data-testid="versions">
        Versions
      </button>
      {open && (
        <div className="ed-popover" role="dialog" aria-label="Published versions">
          {error && <p className="ed-field-error" role="alert">{error}</p>}
          {versions.isPending && <p className="ed-muted" role="status">Loading…</p>}
          {list?.length === 0 && <p className="ed-muted">Not published yet.</p>}
          <ul>
            {list?.map((v) => (
              <li key={v.version}>
                <span>v{v.version} · {new Date(v.published_at * 1000).toLocaleString()}</span>
                <a className="ed-link-btn" href="#" onClick={async (e) => {
                  e.preventDefault()
                  const text = await api<string>('GET', `${base}/export?version=${v.version}`)
                  download(`version-${v.version}.yml`, text)
                }}>Export</a>
                {canEdit && <button type="button" className="ed-link-btn" onClick={() => void restore(v.version)}>Restore</button>}
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  )
}

function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/x-yaml' }))
  const a = document.createElement('a')
  a.href = url
  a.download = name
  a.click()
  window.setTimeout(() => URL.revokeObjectURL(url), 1000)
}

export const Toolbar = memo(function Toolbar(p: {
  name: string; mode: AppMode; canEdit: boolean; saveState: SaveState; problemCount: number
  canUndo: boolean; canRedo: boolean; onUndo: () => void; onRedo: () => void; onLayout: () => void; onFit: () => void
  onPublish: () => void; onSaveNow: () => void; onToggleDebug: () => void; debugOpen: boolean; base: string
  onRestore: (d: AppDoc) => void; onNotice: (s: string) => void
}) {
  const exportDsl = async () => {
    try {
      const text = await api<string>('GET', `${p.base}/export?version=draft`)
      download(`${p.name || 'app'}.yml`, text)
    } catch (err) {
      p.onNotice((err as Error).message)
    }
  }
  return (
    <div className="ed-toolbar" role="toolbar" aria-label="Editor">
      <strong className="ed-app-name">{p.name}</strong>
      <span className="ed-mode">{p.mode}</span>
      {p.canEdit ? (
        <span className={`ed-save ed-save-${p.saveState}`} data-testid="save-state" data-state={p.saveState}>
          {SAVE_TEXT[p.saveState]}
        </span>
      ) : <span className="ed-save" data-testid="read-only">Read only</span>}
      {p.problemCount > 0 && <span className="ed-problem-count" data-testid="problem-count">{p.problemCount} problem(s)</span>}
      <span className="ed-spacer" />
      {p.canEdit && (
        <>
          <button type="button" className="ed-btn" onClick={p.onUndo} disabled={!p.canUndo} title="Undo (Ctrl+Z)" data-testid="undo">Undo</button>
          <button type="button" className="ed-btn" onClick={p.onRedo} disabled={!p.canRedo} title="Redo (Ctrl+Shift+Z)" data-testid="redo">Redo</button>
          <button type="button" className="ed-btn" onClick={p.onLayout} data-testid="auto-layout">Auto-layout</button>
        </>
      )}
      <button type="button" className="ed-btn" onClick={p.onFit} data-testid="fit">Fit</button>
      <button type="button" className="ed-btn" onClick={() => void exportDsl()} data-testid="export">Export DSL</button>
      <Versions base={p.base} onRestore={p.onRestore} onNotice={p.onNotice} canEdit={p.canEdit} />
      {p.canEdit && (
        <>
          <button type="button" className={`ed-btn${p.debugOpen ? ' ed-active' : ''}`} onClick={p.onToggleDebug}
            data-testid="debug">{['chat', 'chatflow', 'agent'].includes(p.mode) ? 'Preview' : 'Run'}</button>
          <button type="button" className="ed-btn ed-primary" onClick={p.onPublish} data-testid="publish">Publish</button>
        </>
      )}
    </div>
  )
})
