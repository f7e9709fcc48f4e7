import { describe, expect, it } from 'vitest'
import { emptyTrace, foldAll, roundCalls } from './trace'

describe('run trace', () => {
  it('folds a chatflow run: nodes light up, finish with outputs, time and tokens', () => {
    const t = foldAll([
      { event: 'workflow_started', workflow_run_id: 'r1', conversation_id: 'c1', data: { id: 'r1' } },
      { event: 'node_started', data: { node_id: 'start', node_type: 'start', title: 'Start', inputs: { q: 'hi' } } },
      { event: 'node_finished', data: { node_id: 'start', node_type: 'start', status: 'succeeded', outputs: { q: 'hi' }, elapsed_time: 0.01 } },
      { event: 'node_started', data: { node_id: 'llm', node_type: 'llm', title: 'LLM' } },
    ])
    expect(t.status).toBe('running')
    expect(t.runId).toBe('r1')
    expect(t.conversationId).toBe('c1')
    expect(t.nodes.llm.status).toBe('running')
    expect(t.nodes.start).toMatchObject({ status: 'succeeded', inputs: { q: 'hi' }, outputs: { q: 'hi' }, elapsedS: 0.01 })
    const done = foldAll([
      { event: 'message', answer: 'Hel' }, { event: 'message', answer: 'lo' },
      { event: 'node_finished', data: { node_id: 'llm', status: 'succeeded', outputs: { text: 'Hello' }, elapsed_time: 0.5,
        execution_metadata: { total_tokens: 12 } } },
      { event: 'workflow_finished', data: { status: 'succeeded', outputs: {}, total_tokens: 12, elapsed_time: 0.6 } },
      { event: 'message_end', metadata: { usage: { total_tokens: 12 } } },
    ], t)
    expect(done.answer).toBe('Hello')
    expect(done.nodes.llm).toMatchObject({ status: 'succeeded', tokens: 12, title: 'LLM', nodeType: 'llm' })
    expect(done.status).toBe('succeeded')
    expect(done.order).toEqual(['start', 'llm'])
  })

  it('keeps a failed node\'s error and the run\'s error', () => {
    const t = foldAll([
      { event: 'node_started', data: { node_id: 'http', node_type: 'http-request' } },
      { event: 'node_finished', data: { node_id: 'http', status: 'failed', error: 'connection refused' } },
      { event: 'workflow_finished', data: { status: 'failed', error: 'node http failed' } },
    ])
    expect(t.nodes.http).toMatchObject({ status: 'failed', error: 'connection refused' })
    expect(t).toMatchObject({ status: 'failed', error: 'node http failed' })
    expect(foldAll([{ event: 'error', message: 'App unavailable' }]).error).toBe('App unavailable')
  })

  it('counts runs of a node inside an iteration and lists agent rounds in order', () => {
    const t = foldAll([
      { event: 'node_started', data: { node_id: 'x', iteration_id: 'it' } },
      { event: 'node_finished', data: { node_id: 'x', status: 'succeeded', execution_metadata: { total_tokens: 2 } } },
      { event: 'node_started', data: { node_id: 'x', iteration_id: 'it' } },
      { event: 'node_finished', data: { node_id: 'x', status: 'succeeded', execution_metadata: { total_tokens: 3 } } },
      { event: 'agent_thought', position: 2, thought: 'done', tool: '', tool_input: '', observation: '' },
      { event: 'agent_thought', position: 1, thought: 'look up', tool: 'time.now', tool_input: '{}', observation: '12:00' },
    ], emptyTrace())
    expect(t.nodes.x).toMatchObject({ runs: 2, tokens: 5 })
    expect(t.rounds.map((r) => [r.position, r.tool, r.observation])).toEqual([[1, 'time.now', '12:00'], [2, '', '']])
  })
})

describe('agent rounds', () => {
  it('splits a round into its tool calls, arguments and observations decoded from Dify\'s JSON-in-JSON', () => {
    const t = foldAll([
      { event: 'agent_thought', position: 1, thought: '', tool: 'math.eval;time.now',
        tool_input: JSON.stringify({ 'math.eval': '{"expression": "2 + 3"}', 'time.now': '{}' }),
        observation: JSON.stringify({ 'math.eval': '{"expression": "2 + 3", "result": 5}', 'time.now': 'error: timeout' }) },
      { event: 'agent_thought', position: 2, thought: 'It is 5.', tool: '', tool_input: '', observation: '' },
    ])
    expect(t.rounds.map((r) => r.position)).toEqual([1, 2])
    expect(roundCalls(t.rounds[0])).toEqual([
      { tool: 'math.eval', input: '{"expression":"2 + 3"}', observation: '{"expression":"2 + 3","result":5}' },
      { tool: 'time.now', input: '{}', observation: 'error: timeout' },
    ])
    expect(roundCalls(t.rounds[1])).toEqual([])
    expect(roundCalls({ position: 3, thought: '', tool: 'x', toolInput: 'not json', observation: 'plain' }))
      .toEqual([{ tool: 'x', input: 'not json', observation: 'plain' }])
  })
})
