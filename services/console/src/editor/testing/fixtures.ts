/** Graphs for the editor's unit tests: every node type the orchestrator runs, with the fields
 *  `docs/dsl.md` names, plus keys the editor does not know (they must survive a round trip). */
import type { Graph } from '../dsl/types'

const model = { provider: 'loom', name: 'gemma3:270m', mode: 'chat', completion_params: { max_tokens: 64 } }

export function everyNodeType(): Graph {
  return {
    version: '1',
    x_unknown_graph_key: { kept: true },
    nodes: [
      { id: 'start', data: { type: 'start', title: 'Start', variables: [
        { variable: 'q', label: 'Question', type: 'text-input', required: true, max_length: 200 },
        { variable: 'n', type: 'number', required: false },
      ] }, position: { x: 0, y: 0 }, x_ui: { selected: false } },
      { id: 'kr', data: { type: 'knowledge-retrieval', title: 'KB', query_variable_selector: ['sys', 'query'],
        dataset_ids: ['ds1'], retrieval_mode: 'multiple', search_method: 'hybrid_search',
        multiple_retrieval_config: { top_k: 3, score_threshold: 0.2 }, x_future_field: [1, 2] }, position: { x: 300, y: 0 } },
      { id: 'llm', data: { type: 'llm', title: 'LLM', model, prompt_template: [
        { role: 'system', text: 'Use {{#context#}}' }, { role: 'user', text: '{{#start.q#}} {{#sys.query#}}' }],
      memory: { window: { enabled: true, size: 10 }, max_tokens: 2000 },
      context: { enabled: true, variable_selector: ['kr', 'result'] },
      retry_config: { retry_enabled: true, max_retries: 2, retry_interval: 500 },
      error_strategy: 'fail-branch', timeout_s: 60 }, position: { x: 600, y: 0 } },
      { id: 'if1', data: { type: 'if-else', title: 'If', cases: [
        { case_id: 'yes', logical_operator: 'and', conditions: [
          { variable_selector: ['llm', 'text'], comparison_operator: 'contains', value: 'ok' }] },
        { case_id: 'maybe', logical_operator: 'or', conditions: [
          { variable_selector: ['start', 'n'], comparison_operator: '>', value: 3 }] }] }, position: { x: 900, y: 0 } },
      { id: 'qc', data: { type: 'question-classifier', title: 'Classify', query_variable_selector: ['sys', 'query'],
        model, classes: [{ id: 'c1', name: 'billing' }, { id: 'c2', name: 'other' }], instruction: 'be brief' },
      position: { x: 1200, y: 0 } },
      { id: 'pe', data: { type: 'parameter-extractor', title: 'Extract', query: ['sys', 'query'], model,
        parameters: [{ name: 'city', type: 'string', required: true, description: 'a city' }], reasoning_mode: 'prompt' },
      position: { x: 1500, y: 0 } },
      { id: 'code', data: { type: 'code', title: 'Code', code_language: 'python3', code: 'def main(x):\n    return {"y": x}',
        variables: [{ variable: 'x', value_selector: ['pe', 'city'] }], outputs: { y: { type: 'string' } } },
      position: { x: 1800, y: 0 } },
      { id: 'tt', data: { type: 'template-transform', title: 'Tpl', template: '{{ x }}!',
        variables: [{ variable: 'x', value_selector: ['code', 'y'] }] }, position: { x: 2100, y: 0 } },
      { id: 'http', data: { type: 'http-request', title: 'HTTP', method: 'post', url: 'http://127.0.0.1/{{#tt.output#}}',
        headers: 'A: b', params: '', body: { type: 'json', data: '{"a": "{{#start.q#}}"}' } }, position: { x: 2400, y: 0 } },
      { id: 'tool', data: { type: 'tool', title: 'Tool', provider_id: 'builtin', tool_name: 'time.now',
        tool_parameters: { tz: { type: 'constant', value: 'UTC' }, q: { type: 'variable', value: ['start', 'q'] } } },
      position: { x: 2700, y: 0 } },
      { id: 'agg', data: { type: 'variable-aggregator', title: 'Agg', output_type: 'string',
        variables: [['tool', 'text'], ['http', 'body']] }, position: { x: 3000, y: 0 } },
      { id: 'asg', data: { type: 'assigner', title: 'Assign', version: '2', items: [
        { variable_selector: ['conversation', 'visits'], input_type: 'constant', operation: '+=', value: 1 }] },
      position: { x: 3300, y: 0 } },
      { id: 'it', data: { type: 'iteration', title: 'Each', iterator_selector: ['kr', 'result'],
        output_selector: ['it_llm', 'text'], start_node_id: 'it_start', is_parallel: true, parallel_nums: 2,
        error_handle_mode: 'continue-on-error' }, position: { x: 3600, y: 0 } },
      { id: 'it_start', data: { type: 'iteration-start', title: '' }, parent_id: 'it', position: { x: 24, y: 56 } },
      { id: 'it_llm', data: { type: 'llm', title: 'Per item', model, prompt_template: [
        { role: 'user', text: '{{#it.item#}} #{{#it.index#}} {{#start.q#}}' }] }, parent_id: 'it', position: { x: 300, y: 56 } },
      { id: 'lp', data: { type: 'loop', title: 'Loop', loop_count: 3, logical_operator: 'and',
        break_conditions: [{ variable_selector: ['lp', 'count'], comparison_operator: '≥', value: 2 }],
        loop_variables: [{ label: 'count', var_type: 'number', value_type: 'constant', value: 0 }] },
      position: { x: 4200, y: 0 } },
      { id: 'lp_start', data: { type: 'loop-start', title: '' }, parent_id: 'lp', position: { x: 24, y: 56 } },
      { id: 'lp_asg', data: { type: 'assigner', title: 'Count', items: [
        { variable_selector: ['lp', 'count'], input_type: 'constant', operation: '+=', value: 1 }] },
      parent_id: 'lp', position: { x: 300, y: 56 } },
      { id: 'lp_end', data: { type: 'loop-end', title: 'Stop' }, parent_id: 'lp', position: { x: 600, y: 56 } },
      { id: 'agent', data: { type: 'agent', title: 'Agent', model, instruction: 'help', query: '{{#sys.query#}}',
        tools: [{ tool_name: 'time.now' }], strategy: 'react', max_iterations: 3, tool_choice: 'required' },
      position: { x: 4800, y: 0 } },
      { id: 'ans', data: { type: 'answer', title: 'Answer', answer: '{{#llm.text#}} {{#agent.text#}}' }, position: { x: 5100, y: 0 } },
      { id: 'end', data: { type: 'end', title: 'End', outputs: [{ variable: 'out', value_selector: ['lp', 'count'] }] },
        position: { x: 5400, y: 0 } },
    ],
    edges: [
      { id: 'e1', source: 'start', target: 'kr' },
      { source: 'kr', target: 'llm', source_handle: 'source', target_handle: 'target' },
      { id: 'e3', source: 'llm', target: 'if1', x_edge_ui: 'kept' },
      { id: 'e3f', source: 'llm', target: 'ans', source_handle: 'fail-branch' },
      { id: 'e4', source: 'if1', target: 'qc', source_handle: 'yes' },
      { id: 'e5', source: 'if1', target: 'pe', source_handle: 'maybe' },
      { id: 'e6', source: 'if1', target: 'agent', source_handle: 'false' },
      { id: 'e7', source: 'qc', target: 'pe', source_handle: 'c1' },
      { id: 'e8', source: 'qc', target: 'agent', source_handle: 'c2' },
      { id: 'e9', source: 'pe', target: 'code' },
      { id: 'e10', source: 'code', target: 'tt' },
      { id: 'e11', source: 'tt', target: 'http' },
      { id: 'e12', source: 'http', target: 'tool' },
      { id: 'e13', source: 'tool', target: 'agg' },
      { id: 'e14', source: 'agg', target: 'asg' },
      { id: 'e15', source: 'asg', target: 'it' },
      { id: 'e16', source: 'it_start', target: 'it_llm' },
      { id: 'e17', source: 'it', target: 'lp' },
      { id: 'e18', source: 'lp_start', target: 'lp_asg' },
      { id: 'e19', source: 'lp_asg', target: 'lp_end' },
      { id: 'e20', source: 'lp', target: 'agent' },
      { id: 'e21', source: 'agent', target: 'ans' },
      { id: 'e22', source: 'ans', target: 'end' },
    ],
    conversation_variables: [{ name: 'visits', value_type: 'number', value: 0 }],
    environment_variables: [{ name: 'api_base', value_type: 'string', value: 'http://127.0.0.1' }],
  }
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
