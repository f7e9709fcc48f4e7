/** An answer as text with its inline chart images (see answerParts). */
import { answerParts } from './answerParts'

export function AnswerText({ answer }: { answer: string }) {
  return (
    <>
      {answerParts(answer).map((p, i) => p.kind === 'image'
        ? <img key={i} className="ed-answer-image" src={p.src} alt={p.alt} data-testid="answer-image" />
        : <span key={i}>{p.text}</span>)}
    </>
  )
}
