/**
 * An answer's text split into text and inline images, so a chart a tool returned (chart.render
 * puts `![title](data:image/svg+xml;base64,...)` in the answer) shows as a picture, not as
 * kilobytes of base64. Only base64 `data:image/svg+xml` and `data:image/png` URLs become images:
 * shown through <img>, an SVG runs no script and loads nothing; any other markdown stays text.
 */
export type AnswerPart = { kind: 'text'; text: string } | { kind: 'image'; alt: string; src: string }

const IMAGE = /!\[([^\]\n]{0,200})\]\((data:image\/(?:svg\+xml|png);base64,[A-Za-z0-9+/=]+)\)/g

export function answerParts(answer: string): AnswerPart[] {
  const parts: AnswerPart[] = []
  let last = 0
  for (const m of answer.matchAll(IMAGE)) {
    const at = m.index ?? 0
    if (at > last) parts.push({ kind: 'text', text: answer.slice(last, at) })
    parts.push({ kind: 'image', alt: m[1] || 'chart', src: m[2] })
    last = at + m[0].length
  }
  if (last < answer.length) parts.push({ kind: 'text', text: answer.slice(last) })
  return parts
}
