import { describe, expect, it } from 'vitest'
import type { Graph } from '../dsl/types'
import { everyNodeType } from '../testing/fixtures'
import { isReachable, reachableVars, references, upstream } from './scope'

const names = (graph: Graph, id: string, mode: 'chatflow' | 'workflow' = 'chatflow', includeOwn = false) =>
  reachableVars(graph, id, { mode, includeOwn }).flatMap((g) => g.vars.map((v) => v.selector.join('.')))

describe('variable scoping', () => {
  it('offers only nodes upstream, nearest first', () => {
    const g = everyNodeType()
    expect(upstream(g, 'llm')).toEqual(['kr', 'start'])
    const vars = names(g, 'llm')
    expect(vars).toContain('kr.result')
    expect(vars).toContain('start.q')
    expect(vars).not.toContain('if1.result') // downstream
    expect(vars).not.toContain('llm.text') // itself
    expect(vars.indexOf('kr.result')).toBeLessThan(vars.indexOf('start.q'))
  })

  it('follows every branch back through if-else and the classifier', () => {
    const vars = names(everyNodeType(), 'agent')
    for (const v of ['qc.class_name', 'if1.selected_case_id', 'lp.count', 'lp.loop_round', 'it.output', 'llm.text']) {
      expect(vars).toContain(v)
    }
    // Children of a container are not visible outside it: only the container's outputs.
    expect(vars).not.toContain('it_llm.text')
    expect(vars).not.toContain('it.item')
  })

  it('offers item and index inside an iteration, and what is upstream of the iteration', () => {
    const vars = names(everyNodeType(), 'it_llm')
    expect(vars).toContain('it.item')
    expect(vars).toContain('it.index')
    expect(vars).toContain('agg.output')
    expect(vars).toContain('start.q')
    expect(vars).not.toContain('it.output')
  })

  it('offers loop variables inside a loop, and to the loop itself (break conditions)', () => {
    const g = everyNodeType()
    expect(names(g, 'lp_end')).toContain('lp.count')
    expect(names(g, 'lp_end')).toContain('lp.index')
    expect(names(g, 'lp', 'chatflow', true)).toContain('lp.count')
    expect(names(g, 'lp', 'chatflow', false)).not.toContain('lp.count')
  })

  it('offers the iteration its children for output_selector', () => {
    expect(names(everyNodeType(), 'it', 'chatflow', true)).toContain('it_llm.text')
  })

  it('adds conversation, environment and the mode\'s system variables', () => {
    const g = everyNodeType()
    const chat = names(g, 'start')
    expect(chat).toEqual(expect.arrayContaining(['conversation.visits', 'env.api_base', 'sys.query', 'sys.dialogue_count']))
    const wf = names(g, 'start', 'workflow')
    expect(wf).not.toContain('sys.query')
    expect(wf).toContain('sys.user_id')
  })

  it('parses {{#node.var#}} references and checks them against the scope', () => {
    expect(references('a {{#start.q#}} b {{#kr.result.0.content#}} {{#context#}}')).toEqual([
      ['start', 'q'], ['kr', 'result', '0', 'content']])
    const groups = reachableVars(everyNodeType(), 'llm', { mode: 'chatflow' })
    expect(isReachable(groups, ['kr', 'result', '0', 'content'])).toBe(true)
    expect(isReachable(groups, ['if1', 'result'])).toBe(false)
  })
})
