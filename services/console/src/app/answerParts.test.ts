import { describe, expect, it } from 'vitest'
import { answerParts } from './answerParts'

describe('answerParts', () => {
  it('turns a chart data URL into an image between the text', () => {
    const url = 'data:image/svg+xml;base64,PHN2Zz48L3N2Zz4='
    expect(answerParts(`12 rows\n\n![Revenue](${url})\nend`)).toEqual([
      { kind: 'text', text: '12 rows\n\n' },
      { kind: 'image', alt: 'Revenue', src: url },
      { kind: 'text', text: '\nend' },
    ])
  })

  it('leaves other images and links as text', () => {
    for (const text of ['![x](https://example.com/a.png)', '![x](data:text/html;base64,PHNjcmlwdD4=)',
      '![x](javascript:alert(1))', 'plain']) {
      expect(answerParts(text)).toEqual([{ kind: 'text', text }])
    }
  })
})
