/** Graphs for the editor's unit tests: every node type the orchestrator runs, with the fields
 *  `docs/dsl.md` names, plus keys the editor does not know (they must survive a round trip;
 *  `x_*` keys, which the gateway's validator ignores). */
import type { Graph } from '../dsl/types'
import every from './every-node-type.json'

const model = { provider: 'loom', name: 'gemma3:270m', mode: 'chat', completion_params: { max_tokens: 64 } }

/** A fresh copy each call (tests change it). The same file is checked by the Python DSL
 *  validator (tests/console/test_console_editor_dsl.py): it is a graph the gateway accepts. */
export function everyNodeType(): Graph {
  return structuredClone(every) as unknown as Graph
}

/** A chain of `n` nodes (start, then LLM/code/template nodes, an answer last): the bench's graph. */
export function chain(n: number): Graph {
  const kinds = ['llm', 'code', 'template-transform'] as const
  const nodes: Graph['nodes'] = [{ id: 'start', data: { type: 'start', title: 'Start', variables: [] } }]
  for (let i = 1; i < n - 1; i++) {
    const type = kinds[i % 3]
    const data = type === 'llm' ? { type, title: `LLM ${i}`, model, prompt_template: [{ role: 'user', text: '{{#sys.query#}}' }] }
      : type === 'code' ? { type, title: `Code ${i}`, code: 'def main():\n    return {}', outputs: {} }
        : { type, title: `Template ${i}`, template: 'x', variables: [] }
    nodes.push({ id: `n${i}`, data })
  }
  nodes.push({ id: 'answer', data: { type: 'answer', title: 'Answer', answer: 'done' } })
  const edges = nodes.slice(1).map((node, i) => ({ id: `e${i}`, source: nodes[i].id, target: node.id }))
  return { version: '1', nodes, edges, conversation_variables: [], environment_variables: [] }
}
