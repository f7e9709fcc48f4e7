/** Node ids the editor makes: readable (`llm_2`), valid for the DSL (`[A-Za-z0-9_-]+`) and for
 *  `{{#id.var#}}` references, never reusing an id in the graph. */
export function newNodeId(type: string, taken: Iterable<string>): string {
  const used = new Set(taken)
  const base = type.replace(/[^A-Za-z0-9]+/g, '_')
  if (!used.has(base)) return base
  for (let i = 2; ; i++) {
    const id = `${base}_${i}`
    if (!used.has(id)) return id
  }
}
