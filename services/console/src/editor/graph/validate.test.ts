import { describe, expect, it } from 'vitest'
import { everyNodeType } from '../testing/fixtures'
import { byNode, localProblems, parseServerProblems, readsOf } from './validate'

// The gateway's 400 for an invalid draft: BadRequest(f"invalid workflow graph: {DSLError}").
const SERVER = [
  "invalid workflow graph: invalid workflow graph:",
  "  node 'llm' (llm): data.model.name: Field required",
  "  node 'ans' (answer): answer: refers to {{#gone.text#}} but there is no node 'gone'",
  "  node 'if1' (if-else): edge 'e4' source_handle 'nope' is none of ['false', 'yes']",
  "  edge '#1': target 'nope' is not a node",
  "  node 'x': id: duplicated",
  "  nodes.3: a node is an object with id and data",
  "  edges: the graph has a cycle through t, u (use a loop node)",
].join('\n')

describe('validation mapping', () => {
  it('maps each gateway DSL error to its node and field', () => {
    const g = everyNodeType()
    const problems = parseServerProblems(SERVER, g)
    expect(problems).toEqual([
      { nodeId: 'llm', field: 'model.name', message: 'Field required', source: 'server' },
      { nodeId: 'ans', field: 'answer', message: "refers to {{#gone.text#}} but there is no node 'gone'", source: 'server' },
      { nodeId: 'if1', edgeId: 'e4', message: "edge 'e4' source_handle 'nope' is none of ['false', 'yes']", source: 'server' },
      { nodeId: 'kr', edgeId: 'kr-source-llm', message: "target 'nope' is not a node", source: 'server' },
      { nodeId: 'x', field: 'id', message: 'duplicated', source: 'server' },
      { nodeId: 'if1', field: undefined, message: 'a node is an object with id and data', source: 'server' },
      { message: 'edges: the graph has a cycle through t, u (use a loop node)', source: 'server' },
    ])
    expect(byNode(problems).get('llm')!.map((p) => p.field)).toEqual(['model.name'])
  })

  it('finds nothing wrong with a valid graph', () => {
    expect(localProblems(everyNodeType(), 'chatflow')).toEqual([])
  })

  it('marks an unconnected node and a missing required field before saving', () => {
    const g = everyNodeType()
    g.nodes.push({ id: 'kr2', data: { type: 'knowledge-retrieval', title: 'KB2', query_variable_selector: [], dataset_ids: [] } })
    const problems = byNode(localProblems(g, 'chatflow')).get('kr2')!
    expect(problems.map((p) => p.field ?? p.message)).toEqual([
      'not connected: no edge leads into this node', 'query_variable_selector', 'dataset_ids'])
  })

  it('marks a node cut off from Start and a reference to a node that is not upstream', () => {
    const g = everyNodeType()
    g.edges = g.edges.filter((e) => e.id !== 'e1') // start -/-> kr
    g.nodes.find((n) => n.id === 'tt')!.data.template = 'x'
    const ans = g.nodes.find((n) => n.id === 'ans')!
    ans.data.answer = '{{#end.x#}} {{#conversation.nope#}}'
    const problems = localProblems(g, 'chatflow')
    expect(problems).toContainEqual({ nodeId: 'kr', message: 'not connected: no edge leads into this node', source: 'local' })
    expect(problems).toContainEqual({ nodeId: 'llm', message: 'not reachable from the start node', source: 'local' })
    expect(problems).toContainEqual({ nodeId: 'ans', field: 'answer',
      message: "refers to {{#end.x#}} but 'end' is not upstream of this node", source: 'local' })
    expect(problems).toContainEqual({ nodeId: 'ans', field: 'answer',
      message: "refers to {{#conversation.nope#}} but there is no conversation variable 'nope'", source: 'local' })
  })

  it('needs exactly one start and a container start inside each container', () => {
    const g = everyNodeType()
    g.nodes = g.nodes.filter((n) => n.id !== 'it_start')
    g.edges = g.edges.filter((e) => e.source !== 'it_start')
    g.nodes.push({ id: 'start2', data: { type: 'start', variables: [] } })
    const problems = localProblems(g, 'workflow')
    expect(problems).toContainEqual({ message: 'the graph needs exactly one Start node, it has 2', source: 'local' })
    expect(problems).toContainEqual({ nodeId: 'it', field: 'start_node_id', message: 'needs its iteration-start node inside', source: 'local' })
  })

  it('reads selectors and templates wherever a node keeps them', () => {
    const g = everyNodeType()
    const reads = (id: string) => readsOf(g.nodes.find((n) => n.id === id)!).map((r) => `${r.field}=${r.selector.join('.')}`)
    expect(reads('llm')).toEqual(['prompt_template.1.text=start.q', 'prompt_template.1.text=sys.query', 'context.variable_selector=kr.result'])
    expect(reads('if1')).toEqual(['cases.0.conditions.0.variable_selector=llm.text', 'cases.1.conditions.0.variable_selector=start.n'])
    expect(reads('tool')).toEqual(['tool_parameters.q=start.q'])
    expect(reads('agg')).toEqual(['variables.0=tool.text', 'variables.1=http.body'])
    expect(reads('lo')).toEqual(['variable=sys.files'])
  })
})
