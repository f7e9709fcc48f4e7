/**
 * The workflow editor: palette, canvas, side panel, toolbar and debug drawer over one app's
 * draft. State is React Flow's nodes and edges (each carrying its DSL node/edge, see
 * graph/convert.ts) plus the graph's other fields; every edit goes through here so it can be
 * undone, marks the draft dirty and is autosaved (with a conflict check, drafts.ts).
 */
import { useCallback, useDeferredValue, useEffect, useMemo, useRef, useState, type PointerEvent as ReactPointerEvent } from 'react'
import {
  applyEdgeChanges, applyNodeChanges, Background, Controls, MiniMap, ReactFlow, useReactFlow, useStore,
  type Connection, type EdgeChange, type NodeChange, type OnNodeDrag, type OnSelectionChangeParams,
} from '@xyflow/react'
import { useQueryClient } from '@tanstack/react-query'
import '@xyflow/react/dist/style.css'
import './editor.css'
import { api, ApiError } from '../app/api'
import { nodeTypes } from './canvas/NodeView'
import { Palette } from './canvas/Palette'
import { EditorContext, GraphContext, type EditorContextValue } from './context'
import { DebugPanel } from './debug/DebugPanel'
import { DraftConflict, DraftStore, stableJson } from './drafts'
import { CONTAINER_START, spec } from './dsl/nodeTypes'
import type { AppDoc, DslNode, Graph, ModelConfig, NodeData, NodeType } from './dsl/types'
import { copy, isClip, paste, type Clip } from './graph/clipboard'
import { freeChildren, placeNodes, planDrop, scopeEdges, withExtents } from './graph/containers'
import {
  CONTAINER_MIN, CONTAINER_PAD, containerSizes, edgeId, toFlow, toFlowNode, toGraph, type GraphMeta, type LoomEdge,
  type LoomNode,
} from './graph/convert'
import { History } from './graph/history'
import { newNodeId } from './graph/ids'
import { autoLayout, needsLayout } from './graph/layout'
import { byNode, localProblems, parseServerProblems, type Problem } from './graph/validate'
import { GraphSettings } from './panels/GraphSettings'
import { NodePanel } from './panels/NodePanel'
import { emptyTrace, type RunTrace } from './run/trace'
import { Toolbar, type SaveState } from './Toolbar'


const EMPTY: Graph = { nodes: [], edges: [] }
const DELETE_KEYS = ['Backspace', 'Delete']
const PRO = { hideAttribution: true }
// Above this many nodes the minimap (which redraws every node on each drag frame) is left out.
const MINIMAP_MAX = 80

/** The dotted background, left out when zoomed far out: its dots are then a pixel or two apart
 *  and repainting them under a dragged node costs more than the rest of the frame. */
function Dots() {
  const near = useStore((s) => s.transform[2] >= 0.5)
  return near ? <Background gap={16} /> : null
}

interface Snap {
  nodes: LoomNode[]
  edges: LoomEdge[]
  meta: GraphMeta
}

const isTyping = (el: EventTarget | null) =>
  el instanceof HTMLElement && (el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName))

export function Editor({ workspaceId, appId, role, doc }: { workspaceId: string; appId: string; role: string; doc: AppDoc }) {
  const canEdit = role !== 'normal'
  const mode = doc.app.mode
  const base = DraftStore.path(workspaceId, appId)
  const rf = useReactFlow<LoomNode, LoomEdge>()
  const queryClient = useQueryClient()
  const initial = useMemo(() => {
    const g = doc.workflow.graph
    return toFlow(needsLayout(g) ? autoLayout(g) : g)
  }, [doc])
  const [nodes, setNodes] = useState<LoomNode[]>(initial.nodes)
  const [edges, setEdges] = useState<LoomEdge[]>(initial.edges)
  const [meta, setMeta] = useState<GraphMeta>(initial.meta)
  const [structure, setStructure] = useState(0) // bumped by every edit but moves
  const [version, setVersion] = useState(needsLayout(doc.workflow.graph) ? 1 : 0) // bumped by every edit
  const [selected, setSelected] = useState<string | null>(null)
  const [serverProblems, setServerProblems] = useState<Problem[]>([])
  const [saveState, setSaveState] = useState<SaveState>('saved')
  const [notice, setNotice] = useState('')
  const [conflict, setConflict] = useState<AppDoc | null>(null)
  const [trace, setTrace] = useState<RunTrace>(emptyTrace)
  const [debugOpen, setDebugOpen] = useState(false)
  const refs = useRef<Snap>({ nodes, edges, meta })
  refs.current = { nodes, edges, meta }
  // Made once (useRef(new X()) would build a new one on every render: for the draft store a
  // key-sorted JSON of the whole document, on every drag frame).
  const [history] = useState(() => ({ current: new History<Snap>() }))
  const [store] = useState(() => ({ current: new DraftStore(api, base, doc) }))
  const clip = useRef<Clip | null>(null)
  const wrapper = useRef<HTMLDivElement>(null)
  const docMeta = useRef(doc)
  // A draft the gateway refuses (it validates every save) stays in this browser until it saves,
  // so closing the tab on a half-configured node loses nothing.
  const stashKey = `loom.editor.unsaved.${workspaceId}.${appId}`
  const [stashed, setStashed] = useState<AppDoc | null>(() => {
    try {
      const raw = localStorage.getItem(stashKey)
      const found = raw ? (JSON.parse(raw) as AppDoc) : null
      return found && stableJson(found) !== stableJson(doc) ? found : null
    } catch {
      return null
    }
  })

  // Every edit counts here at once (the save state must never read "saved" over an unsaved edit).
  const edits = useRef(0)
  const touch = useCallback((structural = true) => {
    edits.current += 1
    if (structural) setStructure((s) => s + 1)
    setVersion((v) => v + 1)
    if (canEdit) setSaveState('dirty')
  }, [canEdit])
  const remember = useCallback((tag: string | null = null) => history.current.push(refs.current, tag), [])

  // The graph as the checks and panels see it: rebuilt on edits, not on every drag frame.
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const graph = useMemo(() => toGraph(refs.current.nodes, refs.current.edges, refs.current.meta), [structure])
  // Checked in a deferred render: the canvas paints first, problems follow.
  const checked = useDeferredValue(graph, EMPTY)
  const local = useMemo(() => localProblems(checked, mode), [checked, mode])
  // The gateway repeats some of what the editor finds (a missing field): show each once.
  const server = useMemo(() => serverProblems.filter((sp) =>
    !local.some((l) => l.nodeId === sp.nodeId && l.field !== undefined && l.field === sp.field)), [local, serverProblems])
  const problems = useMemo(() => byNode([...local, ...server]), [local, server])
  const ctx: EditorContextValue = useMemo(() => ({ problems, trace, canEdit, mode, workspaceId, appId }),
    [problems, trace, canEdit, mode, workspaceId, appId])

  const currentDoc = useCallback((): AppDoc => {
    const { nodes: n, edges: e, meta: m } = refs.current
    const d = docMeta.current
    return { ...d, workflow: { ...d.workflow, graph: toGraph(n, e, m) } }
  }, [])

  const setGraph = useCallback((g: Graph, select: string[] = []) => {
    remember()
    const f = toFlow(g)
    const pick = new Set(select)
    setNodes(f.nodes.map((n) => (pick.has(n.id) ? { ...n, selected: true } : n)))
    setEdges(f.edges)
    setMeta(f.meta)
    touch()
  }, [remember, touch])

  /** Show every node: computed from the document's positions, since React Flow's own fitView
   *  only sees the nodes it has measured (with visible-only rendering, not the off-screen ones). */
  const fitAll = useCallback((duration = 0) => {
    const box = wrapper.current?.getBoundingClientRect()
    const top = refs.current.nodes.filter((n) => !n.parentId)
    if (!box || !top.length) return
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity]
    for (const n of top) {
      const w = n.measured?.width ?? n.initialWidth ?? 240
      const h = n.measured?.height ?? n.initialHeight ?? 60
      x0 = Math.min(x0, n.position.x)
      y0 = Math.min(y0, n.position.y)
      x1 = Math.max(x1, n.position.x + w)
      y1 = Math.max(y1, n.position.y + h)
    }
    const pad = 40
    const zoom = Math.max(0.1, Math.min(1, (box.width - 2 * pad) / (x1 - x0), (box.height - 2 * pad) / (y1 - y0)))
    void rf.setViewport({ x: (box.width - (x1 - x0) * zoom) / 2 - x0 * zoom, y: (box.height - (y1 - y0) * zoom) / 2 - y0 * zoom, zoom },
      { duration })
  }, [rf])

  // ---- saving -------------------------------------------------------------------------
  const queue = useRef<Promise<boolean>>(Promise.resolve(true))
  const save = useCallback((force = false): Promise<boolean> => {
    const run = async (): Promise<boolean> => {
      if (!canEdit) return false
      setSaveState('saving')
      const saving = edits.current
      try {
        await store.current.save(currentDoc(), force)
        const current = edits.current === saving // no edit came in while it saved
        if (current) localStorage.removeItem(stashKey)
        setServerProblems([])
        setConflict(null)
        setSaveState(current ? 'saved' : 'dirty')
        return true
      } catch (err) {
        try {
          localStorage.setItem(stashKey, JSON.stringify(currentDoc()))
        } catch {
          /* storage full or disabled: the editor still holds the changes */
        }
        if (err instanceof DraftConflict) {
          setConflict(err.theirs)
          setSaveState('conflict')
        } else if (err instanceof ApiError && err.status === 400) {
          const found = parseServerProblems(err.message, toGraph(refs.current.nodes, refs.current.edges, refs.current.meta))
          setServerProblems(found.length ? found : [{ message: err.message, source: 'server' }])
          setSaveState('invalid')
        } else {
          setNotice(err instanceof Error ? err.message : String(err))
          setSaveState('error')
        }
        return false
      }
    }
    queue.current = queue.current.then(run, run)
    return queue.current
  }, [canEdit, currentDoc, stashKey])

  const timer = useRef<number | undefined>(undefined)
  useEffect(() => {
    if (!canEdit || version === 0 || conflict) return
    setSaveState('dirty')
    window.clearTimeout(timer.current)
    timer.current = window.setTimeout(() => void save(), 800)
    return () => window.clearTimeout(timer.current)
  }, [version, canEdit, conflict, save])

  /** Save now (before a run or a publish); false if the gateway refused the draft. */
  const flush = useCallback(async () => {
    window.clearTimeout(timer.current)
    if (conflict) {
      setNotice('Resolve the draft conflict first.')
      return false
    }
    return save()
  }, [conflict, save])

  // ---- editing ------------------------------------------------------------------------
  const defaultModel = useCallback(() => {
    for (const n of refs.current.nodes) {
      const m = n.data.node.data.model as ModelConfig | undefined
      if (m?.name) return m.name
    }
    return ''
  }, [])

  const addNode = useCallback((type: NodeType, at: { x: number; y: number }, parentId?: string) => {
    remember()
    const taken = refs.current.nodes.map((n) => n.id)
    const id = newNodeId(type, taken)
    const data = { type, ...spec(type)!.defaults() } as NodeData
    if (data.model && !(data.model as ModelConfig).name) data.model = { ...(data.model as ModelConfig), name: defaultModel() }
    if (type === 'knowledge-retrieval' || type === 'question-classifier' || type === 'parameter-extractor') {
      const field = type === 'parameter-extractor' ? 'query' : 'query_variable_selector'
      if (['chat', 'chatflow', 'agent'].includes(mode)) data[field] = ['sys', 'query']
    }
    const node: DslNode = { id, data, position: at, ...(parentId ? { parent_id: parentId } : {}) }
    const added: LoomNode[] = [toFlowNode(node, CONTAINER_MIN)]
    const startType = CONTAINER_START[type]
    if (startType) {
      const sid = newNodeId(startType, [...taken, id])
      added.push(toFlowNode({ id: sid, data: { type: startType, title: '' }, parent_id: id,
        position: { x: CONTAINER_PAD.left, y: CONTAINER_PAD.top } }))
    }
    added[0].selected = true
    setNodes((ns) => [...ns.map((n) => (n.selected ? { ...n, selected: false } : n)), ...added])
    setSelected(id)
    touch()
    return id
  }, [defaultModel, mode, remember, touch])

  /** A palette drop: inside an iteration/loop when released over one. */
  const dropNode = useCallback((type: NodeType, screen: { x: number; y: number }) => {
    const box = wrapper.current?.getBoundingClientRect()
    if (!box || screen.x < box.left || screen.x > box.right || screen.y < box.top || screen.y > box.bottom) return
    const at = rf.screenToFlowPosition(screen)
    if (!spec(type)?.container) {
      for (const n of refs.current.nodes) {
        if (n.type !== 'container') continue
        const inner = rf.getInternalNode(n.id)
        const abs = inner?.internals.positionAbsolute ?? n.position
        const w = inner?.measured.width ?? CONTAINER_MIN.width
        const h = inner?.measured.height ?? CONTAINER_MIN.height
        if (at.x >= abs.x && at.x <= abs.x + w && at.y >= abs.y && at.y <= abs.y + h) {
          addNode(type, { x: Math.max(CONTAINER_PAD.left, at.x - abs.x), y: Math.max(CONTAINER_PAD.top, at.y - abs.y) }, n.id)
          fitContainers()
          return
        }
      }
    }
    addNode(type, at)
  }, [addNode, rf]) // eslint-disable-line react-hooks/exhaustive-deps

  /** Keyboard/click add: in the middle of the visible canvas. */
  const addInView = useCallback((type: NodeType) => {
    const box = wrapper.current?.getBoundingClientRect()
    const at = box ? rf.screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 2 }) : { x: 0, y: 0 }
    addNode(type, { x: at.x - 120, y: at.y - 30 })
  }, [addNode, rf])

  const fitContainers = useCallback(() => {
    setNodes((ns) => {
      const sizes = containerSizes(ns.map((n) => ({ ...n.data.node, position: n.position, parent_id: n.parentId })))
      return ns.map((n) => {
        const size = sizes.get(n.id)
        if (!size || (n.style?.width === size.width && n.style?.height === size.height)) return n
        return { ...n, style: { ...n.style, width: size.width, height: size.height } }
      })
    })
  }, [])

  const onNodesChange = useCallback((changes: NodeChange<LoomNode>[]) => {
    const structural = changes.some((c) => c.type === 'remove' || c.type === 'add' || c.type === 'replace')
    const dropped = changes.some((c) => c.type === 'position' && c.dragging === false)
    if (structural) remember()
    // Removing an iteration or loop removes what it holds (its start node is not deletable alone),
    // and the edges of all of them.
    const removed = new Set(changes.flatMap((c) => (c.type === 'remove' ? [c.id] : [])))
    if (removed.size) {
      for (let grew = true; grew;) {
        grew = false
        for (const n of refs.current.nodes) {
          if (n.parentId && removed.has(n.parentId) && !removed.has(n.id)) {
            removed.add(n.id)
            grew = true
          }
        }
      }
      setEdges((es) => es.filter((e) => !removed.has(e.source) && !removed.has(e.target)))
    }
    setNodes((ns) => {
      const next = applyNodeChanges(changes, ns)
      return removed.size ? next.filter((n) => !removed.has(n.id)) : next
    })
    if (structural) touch()
    else if (dropped) touch(false)
  }, [remember, touch])

  const onEdgesChange = useCallback((changes: EdgeChange<LoomEdge>[]) => {
    const structural = changes.some((c) => c.type === 'remove' || c.type === 'add')
    if (structural) remember()
    setEdges((es) => applyEdgeChanges(changes, es))
    if (structural) touch()
  }, [remember, touch])

  const isValidConnection = useCallback((c: Connection | LoomEdge) => {
    if (c.source === c.target) return false
    const byId = new Map(refs.current.nodes.map((n) => [n.id, n]))
    const s = byId.get(c.source)
    const t = byId.get(c.target)
    return Boolean(s && t && (s.parentId ?? null) === (t.parentId ?? null) && spec(t.data.node.data.type)?.target)
  }, [])

  const onConnect = useCallback((c: Connection) => {
    if (!isValidConnection(c)) return
    remember()
    const dsl = { source: c.source, target: c.target, source_handle: c.sourceHandle ?? 'source' }
    const id = edgeId(dsl)
    setEdges((es) => [...es.filter((e) => e.id !== id), {
      id, source: c.source, target: c.target, sourceHandle: dsl.source_handle, targetHandle: 'target',
      data: { edge: { id, ...dsl } },
    }])
    touch()
  }, [isValidConnection, remember, touch])

  const onSelectionChange = useCallback(({ nodes: sel }: OnSelectionChangeParams) => {
    setSelected(sel.length === 1 ? sel[0].id : null)
  }, [])

  const updateData = useCallback((id: string, update: (d: NodeData) => NodeData, tag: string) => {
    if (!canEdit) return
    remember(tag)
    setNodes((ns) => ns.map((n) => (n.id === id
      ? { ...n, data: { ...n.data, node: { ...n.data.node, data: update(n.data.node.data) } } } : n)))
    touch()
  }, [canEdit, remember, touch])

  const updateMeta = useCallback((patch: Partial<GraphMeta>, tag: string) => {
    if (!canEdit) return
    remember(tag)
    setMeta((m) => ({ ...m, ...patch }))
    touch()
  }, [canEdit, remember, touch])

  // Undo and redo put a snapshot of the history back (nothing when there is none).
  const restore = useCallback((snap: Snap | undefined) => {
    if (!snap) return
    setNodes(withExtents(snap.nodes))
    setEdges(snap.edges)
    setMeta(snap.meta)
    touch()
  }, [touch])
  const undo = useCallback(() => restore(history.current.undo(refs.current)), [restore])
  const redo = useCallback(() => restore(history.current.redo(refs.current)), [restore])

  const copySelection = useCallback(() => {
    const ids = refs.current.nodes.filter((n) => n.selected).map((n) => n.id)
    if (!ids.length) return
    clip.current = copy(toGraph(refs.current.nodes, refs.current.edges, refs.current.meta), ids)
    navigator.clipboard?.writeText(JSON.stringify(clip.current)).catch(() => undefined)
    setNotice(`Copied ${clip.current.nodes.length} node(s)`)
  }, [])

  const pasteClip = useCallback(async () => {
    let c = clip.current
    try {
      const text = await navigator.clipboard?.readText()
      const parsed = text ? JSON.parse(text) : null
      if (isClip(parsed)) c = parsed
    } catch {
      /* the system clipboard is optional: the editor's own copy is used */
    }
    if (!c || !c.nodes.length) return
    const current = toGraph(refs.current.nodes, refs.current.edges, refs.current.meta)
    const { graph: next, pasted } = paste(current, c)
    setGraph(next, pasted.slice(0, 1))
  }, [setGraph])

  const layout = useCallback(() => {
    setGraph(autoLayout(toGraph(refs.current.nodes, refs.current.edges, refs.current.meta)))
    window.setTimeout(() => fitAll(), 50)
  }, [fitAll, setGraph])

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (isTyping(e.target)) return
      const mod = e.metaKey || e.ctrlKey
      if (!mod || !canEdit) return
      const k = e.key.toLowerCase()
      if (k === 'z' && !e.shiftKey) undo()
      else if ((k === 'z' && e.shiftKey) || k === 'y') redo()
      else if (k === 'c') copySelection()
      else if (k === 'v') void pasteClip()
      else return
      e.preventDefault()
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [canEdit, copySelection, pasteClip, redo, undo])

  // A "fix the problems first" notice goes once they are fixed.
  useEffect(() => {
    if (local.length === 0) setNotice((n) => (n.startsWith('Fix ') ? '' : n))
  }, [local.length])

  // ---- publish, versions, conflict -----------------------------------------------------
  const publish = useCallback(async () => {
    if (local.length) {
      setNotice(`Fix ${local.length} problem(s) before publishing: they are marked on the nodes.`)
      return
    }
    if (!(await flush())) {
      setNotice('The draft was not saved: fix the problems marked on the nodes before publishing.')
      return
    }
    try {
      const r = await api<{ version: number }>('POST', `${base}/publish`)
      setNotice(`Published version ${r.version}.`)
      // The app's header, the app list and the versions menu show what is published.
      void queryClient.invalidateQueries({ queryKey: ['app', workspaceId, appId] })
      void queryClient.invalidateQueries({ queryKey: ['apps', workspaceId] })
      void queryClient.invalidateQueries({ queryKey: ['versions', base] })
    } catch (err) {
      setNotice(err instanceof Error ? err.message : String(err))
    }
  }, [appId, base, flush, local.length, queryClient, workspaceId])

  const loadDoc = useCallback((d: AppDoc) => {
    docMeta.current = d
    setGraph(needsLayout(d.workflow.graph) ? autoLayout(d.workflow.graph) : d.workflow.graph)
    window.setTimeout(() => fitAll(), 50)
  }, [fitAll, setGraph])

  const keepMine = useCallback(async () => {
    setConflict(null)
    await save(true)
  }, [save])
  const takeTheirs = useCallback(async () => {
    if (!conflict) return
    try {
      const theirs = await store.current.takeStored()
      setConflict(null)
      loadDoc(theirs)
    } catch (err) {
      setNotice(err instanceof Error ? err.message : String(err))
    }
  }, [conflict, loadDoc])

  const selectNode = useCallback((id: string) => {
    setNodes((ns) => ns.map((n) => (n.selected !== (n.id === id) ? { ...n, selected: n.id === id } : n)))
    setSelected(id)
    const n = rf.getInternalNode(id)
    if (n) rf.setCenter(n.internals.positionAbsolute.x + 120, n.internals.positionAbsolute.y + 40, { duration: 200, zoom: rf.getZoom() })
  }, [rf])

  const closePanel = useCallback(() => selectNode(''), [selectNode])
  // Moving a node that is on the canvas into an iteration or loop, or out of one: a child's
  // `extent` is lifted when it is pressed (React Flow reads it as the drag starts), and the drop
  // decides where it belongs (graph/containers.ts).
  const dragging = useRef(false)
  const onPointerDown = useCallback((e: ReactPointerEvent) => {
    if (!canEdit || e.button !== 0) return
    const id = (e.target as HTMLElement).closest?.('.react-flow__node')?.getAttribute('data-id')
    const pressed = id ? refs.current.nodes.find((n) => n.id === id) : undefined
    if (!pressed) return
    const ids = new Set([id!, ...(pressed.selected ? refs.current.nodes.filter((n) => n.selected).map((n) => n.id) : [])])
    if (freeChildren(refs.current.nodes, ids) !== refs.current.nodes) setNodes((ns) => freeChildren(ns, ids))
  }, [canEdit])
  const onPointerUp = useCallback(() => {
    if (!dragging.current) setNodes((ns) => withExtents(ns)) // a click, not a drag
  }, [])
  const onDragStart = useCallback(() => {
    dragging.current = true
    remember(`drag:${Date.now()}`)
  }, [remember])
  const onDragStop: OnNodeDrag<LoomNode> = useCallback((_e, _node, dropped) => {
    dragging.current = false
    const positions = new Map(dropped.map((n) => [n.id, n.position]))
    const moves = planDrop(refs.current.nodes, positions)
    const ids = new Set(positions.keys())
    setNodes((ns) => placeNodes(ns, moves, ids))
    if (moves.length) {
      const parents = placeNodes(refs.current.nodes, moves, ids)
      setEdges((es) => scopeEdges(es, parents))
      touch()
    }
    fitContainers()
  }, [fitContainers, touch])
  const toggleDebug = useCallback(() => setDebugOpen((o) => !o), [])
  const closeDebug = useCallback(() => setDebugOpen(false), [])
  const saveNow = useCallback(() => void flush(), [flush])
  const fitNow = useCallback(() => fitAll(200), [fitAll])
  const onInit = useCallback(() => fitAll(), [fitAll])
  const selectedNode = selected ? nodes.find((n) => n.id === selected)?.data.node : undefined
  const hasStart = nodes.some((n) => n.data.node.data.type === 'start' && !n.parentId)
  const allProblems = useMemo(() => [...local, ...server], [local, server])

  return (
    <EditorContext.Provider value={ctx}>
      <GraphContext.Provider value={graph}>
        <div className="ed-root" data-testid="editor">
          <Toolbar name={doc.app.name} mode={mode} canEdit={canEdit} saveState={saveState} problemCount={allProblems.length}
            canUndo={history.current.canUndo} canRedo={history.current.canRedo} onUndo={undo} onRedo={redo}
            onLayout={layout} onFit={fitNow} onPublish={publish}
            onSaveNow={saveNow} onToggleDebug={toggleDebug} debugOpen={debugOpen}
            base={base} onRestore={loadDoc} onNotice={setNotice} />
          {conflict && (
            <div className="ed-banner ed-banner-warn" role="alert" data-testid="conflict">
              Someone else saved this draft since you opened it. Autosave is paused.
              <button type="button" className="ed-btn" onClick={() => void keepMine()}>Keep mine (overwrite)</button>
              <button type="button" className="ed-btn" onClick={() => void takeTheirs()}>Load theirs</button>
            </div>
          )}
          {stashed && (
            <div className="ed-banner ed-banner-warn" role="alert" data-testid="stashed">
              This browser kept changes to this draft that were never saved.
              <button type="button" className="ed-btn" onClick={() => { loadDoc(stashed); setStashed(null) }}>Restore them</button>
              <button type="button" className="ed-btn" onClick={() => { localStorage.removeItem(stashKey); setStashed(null) }}>
                Discard</button>
            </div>
          )}
          {notice && (
            <div className="ed-banner" role="status" data-testid="notice">
              {notice}
              <button type="button" className="ed-icon-btn" aria-label="Dismiss" onClick={() => setNotice('')}>✕</button>
            </div>
          )}
          <div className="ed-main">
            {canEdit && <Palette onDrop={dropNode} onAdd={addInView} hasStart={hasStart} />}
            <div className="ed-canvas" ref={wrapper} data-testid="canvas" onPointerDownCapture={onPointerDown}
              onPointerUpCapture={onPointerUp}>
              <ReactFlow<LoomNode, LoomEdge>
                nodes={nodes} edges={edges} nodeTypes={nodeTypes}
                onNodesChange={onNodesChange} onEdgesChange={onEdgesChange} onConnect={onConnect}
                isValidConnection={isValidConnection} onSelectionChange={onSelectionChange}
                onNodeDragStart={onDragStart} onNodeDragStop={onDragStop}
                nodesDraggable={canEdit} nodesConnectable={canEdit} edgesReconnectable={false}
                deleteKeyCode={canEdit ? DELETE_KEYS : null}
                onInit={onInit} minZoom={0.1} onlyRenderVisibleElements
                proOptions={PRO}>
                <Dots />
                <Controls showInteractive={false} />
                {nodes.length <= MINIMAP_MAX && <MiniMap pannable zoomable style={{ width: 150, height: 100 }} />}
              </ReactFlow>
            </div>
            {debugOpen ? (
              <DebugPanel mode={mode} graph={graph} trace={trace} setTrace={setTrace} beforeRun={flush} base={base}
                onSelectNode={selectNode} onClose={closeDebug} canEdit={canEdit} />
            ) : selectedNode ? (
              <NodePanel key={selectedNode.id} node={selectedNode} onChange={updateData} onClose={closePanel}
                beforeRun={flush} />
            ) : (
              <GraphSettings graph={graph} mode={mode} problems={allProblems} onChange={updateMeta} onSelectNode={selectNode} />
            )}
          </div>
        </div>
      </GraphContext.Provider>
    </EditorContext.Provider>
  )
}
