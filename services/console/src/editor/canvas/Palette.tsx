/**
 * The palette: every node type the orchestrator runs. A node is added by dragging it onto the
 * canvas (pointer events, so a mouse, a pen or Playwright's mouse all work; it lands inside an
 * iteration or loop when dropped on one) or with Enter/click, which places it in view.
 */
import { memo, useRef, useState } from 'react'
import { NODE_SPECS, type Category } from '../dsl/nodeTypes'
import type { NodeType } from '../dsl/types'

const GROUPS: [Category, string][] = [['flow', 'Flow'], ['ai', 'AI'], ['logic', 'Logic'], ['data', 'Data & tools']]

export const Palette = memo(function Palette({ onDrop, onAdd, hasStart }: {
  /** Called with the screen point where a dragged type was released. */
  onDrop: (type: NodeType, screen: { x: number; y: number }) => void
  onAdd: (type: NodeType) => void
  hasStart: boolean
}) {
  const [ghost, setGhost] = useState<{ type: NodeType; x: number; y: number } | null>(null)
  const moved = useRef(false)

  const start = (type: NodeType) => (e: React.PointerEvent) => {
    if (e.button !== 0) return
    e.preventDefault()
    moved.current = false
    const from = { x: e.clientX, y: e.clientY }
    setGhost({ type, x: e.clientX, y: e.clientY })
    const move = (ev: PointerEvent) => {
      if (Math.abs(ev.clientX - from.x) + Math.abs(ev.clientY - from.y) > 4) moved.current = true
      setGhost({ type, x: ev.clientX, y: ev.clientY })
    }
    const up = (ev: PointerEvent) => {
      window.removeEventListener('pointermove', move)
      window.removeEventListener('pointerup', up)
      setGhost(null)
      if (moved.current) onDrop(type, { x: ev.clientX, y: ev.clientY })
      else onAdd(type)
    }
    window.addEventListener('pointermove', move)
    window.addEventListener('pointerup', up)
  }

  return (
    <nav className="ed-palette" aria-label="Node palette">
      {GROUPS.map(([cat, title]) => (
        <div key={cat} className="ed-palette-group">
          <h4>{title}</h4>
          {Object.values(NODE_SPECS).filter((s) => s.palette && s.category === cat).map((s) => {
            const disabled = s.type === 'start' && hasStart
            return (
              <button type="button" key={s.type} className={`ed-palette-item ed-cat-${cat}`} disabled={disabled}
                data-testid={`palette-${s.type}`} title={disabled ? 'A graph has one Start node' : `Drag onto the canvas, or press Enter`}
                onPointerDown={disabled ? undefined : start(s.type)}
                onKeyDown={(e) => {
                  if (!disabled && (e.key === 'Enter' || e.key === ' ')) {
                    e.preventDefault()
                    onAdd(s.type)
                  }
                }}>
                {s.label}
              </button>
            )
          })}
        </div>
      ))}
      {ghost && (
        <div className="ed-ghost" style={{ left: ghost.x + 6, top: ghost.y + 6 }} aria-hidden>
          {NODE_SPECS[ghost.type].label}
        </div>
      )}
    </nav>
  )
})
