/** An answer as text with its inline chart images (see answerParts). */
import { answerParts } from './answerParts'

const IMAGE_STYLE = { display: 'block', maxWidth: '100%', margin: '6px 0', background: '#fff' } as const

export function AnswerText({ answer }: { answer: string }) {
  return (
    <>
      {answerParts(answer).map((p, i) => p.kind === 'image'
        ? <img key={i} src={p.src} alt={p.alt} data-testid="answer-image" style={IMAGE_STYLE} />
        : <span key={i}>{p.text}</span>)}
    </>
  )
}
