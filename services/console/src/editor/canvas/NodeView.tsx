/** How a node is drawn on the canvas: title, type, one source handle per branch (if-else case,
 *  classifier class, FAIL), its problems and, during a run, its status. Iteration and loop are
 *  drawn as containers their children sit in. */
import { memo, useEffect, useRef } from 'react'
import { Handle, Position, useUpdateNodeInternals, type NodeProps } from '@xyflow/react'
import { useEditor } from '../context'
import { sourceHandles, spec } from '../dsl/nodeTypes'
import type { LoomNode } from '../graph/convert'

type BodyProps = Pick<NodeProps<LoomNode>, 'id' | 'data' | 'selected'> & { container?: boolean }

// Memoised on what it draws: React Flow re-renders a node's view with new props (its position,
// `dragging`) on every frame of a drag; the body re-renders only when its data, selection or
// the editor's problems/trace change.
const Body = memo(function Body({ id, data, selected, container }: BodyProps) {
  const { problems, trace } = useEditor()
  const node = data.node
  const s = spec(node.data.type)
  const handles = sourceHandles(node.data)
  const handleKey = handles.map((h) => h.id).join('|')
  // React Flow measures handles when a node mounts; tell it again only when they change (a case
  // or class added or removed), not for every node on every mount.
  const update = useUpdateNodeInternals()
  const drawn = useRef(handleKey)
  useEffect(() => {
    if (drawn.current === handleKey) return
    drawn.current = handleKey
    update(id)
  }, [id, handleKey, update])
  const mine = problems.get(id) ?? []
  const status = trace.nodes[id]?.status
  const classes = ['ed-node', container ? 'ed-container' : '', `ed-cat-${s?.category ?? 'flow'}`,
    selected ? 'ed-selected' : '', mine.length ? 'ed-invalid' : '', status ? `ed-run-${status}` : ''].filter(Boolean)
  return (
    <div className={classes.join(' ')} data-testid={`node-${id}`} data-type={node.data.type}
      data-status={status ?? ''} data-invalid={mine.length ? 'true' : 'false'}>
      {s?.target && <Handle type="target" position={Position.Left} id="target" className="ed-handle" data-testid={`target-${id}`} />}
      <div className="ed-node-head">
        <span className="ed-node-type">{s?.label ?? node.data.type}</span>
        {mine.length > 0 && <span className="ed-node-warn" title={mine.map((p) => p.message).join('\n')}
          aria-label={`${mine.length} problem(s)`}>!</span>}
        {status && <span className={`ed-status ed-status-${status}`}>{status}</span>}
      </div>
      <div className="ed-node-title">{String(node.data.title || id)}</div>
      {mine.length > 0 && <div className="ed-node-problem" data-testid={`problem-${id}`}>{mine[0].message}</div>}
      <div className="ed-node-handles">
        {handles.map((h) => (
          <div className="ed-handle-row" key={h.id}>
            {h.label && <span className="ed-handle-label">{h.label}</span>}
            <Handle type="source" position={Position.Right} id={h.id} className="ed-handle"
              data-testid={`handle-${id}-${h.id}`} />
          </div>
        ))}
      </div>
    </div>
  )
})

export function LoomNodeView({ id, data, selected }: NodeProps<LoomNode>) {
  return <Body id={id} data={data} selected={selected} />
}
export function ContainerView({ id, data, selected }: NodeProps<LoomNode>) {
  return <Body id={id} data={data} selected={selected} container />
}

export const nodeTypes = { loom: LoomNodeView, container: ContainerView }
