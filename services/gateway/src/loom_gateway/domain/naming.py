"""A conversation's name written by the model (Dify's `auto_generate` rename).

The model reads the conversation's first query and answers with a JSON string of at most
MAX_CHARS characters (a schema the inference service turns into a grammar, with a token cap
that leaves room for its longest reply), so the reply always parses. When it gives nothing
usable (only blanks), or no model can be reached, the name is the first line of the query:
the name Loom gives a new conversation, so a rename never fails for want of a model.
"""

from __future__ import annotations

import json

from loom_gateway.domain.errors import ApiError
from loom_gateway.domain.model_calls import Model
from loom_gateway.store.conversations import conversation_name

MAX_CHARS = 40
MAX_QUERY_CHARS = 2000  # of the query the model reads: the prompt stays small whatever was asked
SCHEMA = json.dumps({"type": "string", "minLength": 1, "maxLength": MAX_CHARS})
# Two tokens a character at worst, plus the quotes: the grammar, not the cap, ends the reply.
MAX_TOKENS = 2 * (MAX_CHARS + 2)
INSTRUCTION = ("Write a title of a few words for a conversation that starts with the message above, "
               "in the language of that message. Reply with a JSON string only.")


async def name_conversation(model: Model, model_name: str, first_query: str, tenant_id: str) -> tuple[str, int]:
    """(the name, tokens the call used: charged to the caller like any model call)."""
    try:
        reply, tokens = await model.complete(model_name, f"{first_query[:MAX_QUERY_CHARS]}\n\n{INSTRUCTION}",
                                             json_schema=SCHEMA, max_tokens=MAX_TOKENS, tenant_id=tenant_id)
    except ApiError as exc:
        if exc.status < 500:
            raise
        return conversation_name(first_query), 0  # inference unreachable or failing: the query's first line
    try:
        name = json.loads(reply)
    except ValueError:
        name = ""
    name = " ".join(name.split()) if isinstance(name, str) else ""
    return (name or conversation_name(first_query)), tokens
