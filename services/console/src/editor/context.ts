/** What every node view and panel reads without prop drilling: problems per node, the current
 *  run's trace, whether the member may edit, and the graph for variable scoping. */
import { createContext, useContext } from 'react'
import type { AppMode, Graph } from './dsl/types'
import type { Problem } from './graph/validate'
import { emptyTrace, type RunTrace } from './run/trace'

export interface EditorContextValue {
  problems: Map<string, Problem[]>
  trace: RunTrace
  canEdit: boolean
  mode: AppMode
  workspaceId: string
  appId: string
}

export const EditorContext = createContext<EditorContextValue>({
  problems: new Map(), trace: emptyTrace(), canEdit: false, mode: 'workflow', workspaceId: '', appId: '',
})

export const useEditor = () => useContext(EditorContext)

/** The current graph, read by panels (kept apart so the canvas does not re-render on it). */
export const GraphContext = createContext<Graph>({ nodes: [], edges: [] })
export const useGraph = () => useContext(GraphContext)
