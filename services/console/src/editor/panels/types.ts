import type { NodeData } from '../dsl/types'

/** What each node type's panel gets: the node's data and one way to change a field. */
export interface PanelProps<D extends NodeData = NodeData> {
  id: string
  data: D
  /** Set one top-level field of the node's data (one undo step per field burst). */
  set: (field: string, value: unknown) => void
  disabled: boolean
  /** Problems by field (`model.name`, `dataset_ids`, ...). */
  errors: Record<string, string>
}

/** The first problem at `field` or under it. */
export function errorAt(errors: Record<string, string>, field: string): string | undefined {
  return errors[field] ?? Object.entries(errors).find(([k]) => k.startsWith(`${field}.`))?.[1]
}
