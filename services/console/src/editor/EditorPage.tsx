/** The editor route: loads the app's draft, then hands it to the editor (React Flow inside a
 *  provider so the palette and panels can use its viewport). */
import { useEffect, useState } from 'react'
import { ReactFlowProvider } from '@xyflow/react'
import { api } from '../app/api'
import { DraftStore } from './drafts'
import type { AppDoc } from './dsl/types'
import { Editor } from './Editor'

export interface EditorPageProps {
  workspaceId: string
  appId: string
  role: string
}

export function EditorPage({ workspaceId, appId, role }: EditorPageProps) {
  const [doc, setDoc] = useState<AppDoc | null>(null)
  const [error, setError] = useState('')
  useEffect(() => {
    let live = true
    setDoc(null)
    setError('')
    api<{ dsl: AppDoc }>('GET', `${DraftStore.path(workspaceId, appId)}/draft`)
      .then((r) => live && setDoc(r.dsl))
      .catch((err) => live && setError(err instanceof Error ? err.message : String(err)))
    return () => {
      live = false
    }
  }, [workspaceId, appId])
  if (error) return <p role="alert" className="ed-load-error">Could not open the draft: {error}</p>
  if (!doc) return <p role="status">Loading the workflow…</p>
  return (
    <ReactFlowProvider>
      <Editor key={`${workspaceId}/${appId}`} workspaceId={workspaceId} appId={appId} role={role} doc={doc} />
    </ReactFlowProvider>
  )
}
