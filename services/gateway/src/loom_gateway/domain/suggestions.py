"""Questions the user may want to ask next, after an answer (Dify's "suggested questions after
answer" feature, `GET /v1/messages/{id}/suggested`).

One short model call on the conversation's last turns; a JSON schema constrains its output
(the inference service turns it into a grammar, with room for its longest reply), so the reply
always parses. As in Dify, a reply that still yields nothing usable gives an empty list, not an
error. What the questions are worth is the model's: the bundled 270M base model writes poor ones.
"""

from __future__ import annotations

import json
from typing import Any

from loom_gateway.domain.model_calls import Model

COUNT = 3
TURNS = 3             # the conversation's last turns the model reads
MAX_TURN_CHARS = 2000  # of each query and answer: the prompt stays small whatever was said
MAX_CHARS = 80        # of a question; the grammar holds the reply to it
SCHEMA = json.dumps({"type": "array", "minItems": COUNT, "maxItems": COUNT,
                     "items": {"type": "string", "minLength": 1, "maxLength": MAX_CHARS}})
# Room for the longest reply the schema allows at two tokens a character (a digit is one), so
# the grammar, not the cap, ends it.
MAX_TOKENS = 2 * COUNT * (MAX_CHARS + 4)
INSTRUCTION = (f"Suggest the {COUNT} questions the user is most likely to ask next, each under 20 words, "
               f"in the language of the conversation. Reply with a JSON array of {COUNT} strings only.")


def enabled(doc: dict[str, Any]) -> bool:
    """The app's DSL turns the feature on under workflow.features, as Dify's does."""
    features = (doc.get("workflow") or {}).get("features") or {}
    return bool((features.get("suggested_questions_after_answer") or {}).get("enabled"))


async def suggest(model: Model, model_name: str, turns: list[tuple[str, str]], tenant_id: str
                  ) -> tuple[list[str], int]:
    """Up to COUNT questions following `turns` ((query, answer), oldest first), and the tokens
    the call used (charged to the caller's quota like any model call)."""
    transcript = "\n".join(f"User: {q[:MAX_TURN_CHARS]}\nAssistant: {a[:MAX_TURN_CHARS]}" for q, a in turns)
    reply, tokens = await model.complete(model_name, f"{transcript}\n\n{INSTRUCTION}", json_schema=SCHEMA,
                                         max_tokens=MAX_TOKENS, tenant_id=tenant_id)
    try:
        questions = json.loads(reply)
    except ValueError:
        return [], tokens
    if not isinstance(questions, list):
        return [], tokens
    return [q.strip() for q in questions if isinstance(q, str) and q.strip()][:COUNT], tokens
