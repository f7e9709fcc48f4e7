"""Chat messages -> one prompt string for a local model.

The template comes from the GGUF metadata (`tokenizer.chat_template`, a Jinja template) when
present; otherwise from the model family's own turn format. The bundled Gemma 3 270M GGUF has
no template, and the generic llama-2 fallback makes it produce nothing, so the family matters.
"""

from __future__ import annotations

from collections.abc import Callable

from loom_common import templating
from loom_inference.engine.types import ChatMessage, InvalidRequest

Renderer = Callable[[list[ChatMessage]], str]


def _gemma(messages: list[ChatMessage]) -> str:
    # Gemma has no system role: the system text is prepended to the first user turn.
    out, system = [], ""
    for m in messages:
        if m.role == "system":
            system += m.content + "\n\n"
            continue
        role = "model" if m.role == "assistant" else "user"
        content = m.content
        if m.role == "tool":
            content = f"Tool {m.name or 'result'} returned: {m.content}"
        if role == "user" and system:
            content, system = system + content, ""
        out.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    return "".join(out) + "<start_of_turn>model\n"


def _chatml(messages: list[ChatMessage]) -> str:
    out = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages]
    return "".join(out) + "<|im_start|>assistant\n"


def _llama3(messages: list[ChatMessage]) -> str:
    out = ["<|begin_of_text|>"] + [
        f"<|start_header_id|>{m.role}<|end_header_id|>\n\n{m.content}<|eot_id|>" for m in messages]
    return "".join(out) + "<|start_header_id|>assistant<|end_header_id|>\n\n"


# Family (GGUF `general.architecture`) -> its turn format when the GGUF carries no template.
FAMILY_FORMATS: dict[str, Renderer] = {
    "gemma": _gemma, "gemma2": _gemma, "gemma3": _gemma, "gemma3n": _gemma,
    "llama": _llama3, "qwen2": _chatml, "qwen3": _chatml, "phi3": _chatml,
}

# Stop strings a family's format needs besides its end-of-generation token.
FAMILY_STOPS: dict[str, list[str]] = {"gemma3": ["<end_of_turn>"], "gemma": ["<end_of_turn>"],
                                      "qwen2": ["<|im_end|>"], "qwen3": ["<|im_end|>"]}


# A GGUF's chat template is code from whoever made the model file: sandboxed and budgeted
# (loom_common.templating), with room for any prompt a context window can hold.
_TEMPLATE_MAX_CHARS = 32_000_000
_TEMPLATE_TIMEOUT_S = 2.0


def _jinja(template: str, bos: str, eos: str) -> Renderer:
    env = templating.ImmutableBudgetedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                  max_string=_TEMPLATE_MAX_CHARS)

    def raise_exception(message: str):
        raise ValueError(message)

    compiled = env.from_string(template)

    def render(messages: list[ChatMessage]) -> str:
        values = {"messages": [{"role": m.role, "content": m.content} for m in messages],
                  "add_generation_prompt": True, "bos_token": bos, "eos_token": eos,
                  "raise_exception": raise_exception}
        try:
            return templating.render_sync(compiled, values, timeout_s=_TEMPLATE_TIMEOUT_S,
                                          max_output=_TEMPLATE_MAX_CHARS)
        except templating.RenderBudgetExceeded as exc:
            raise InvalidRequest(f"the model's chat template: {exc}", "messages") from None

    return render


def renderer_for(metadata: dict[str, str], template: str | None) -> tuple[Renderer, bool]:
    """(renderer, template_includes_bos). GGUF template first, then the family's format."""
    if template:
        return _jinja(template, "", ""), False
    family = metadata.get("general.architecture", "")
    return FAMILY_FORMATS.get(family, _chatml), False


def stops_for(metadata: dict[str, str]) -> list[str]:
    return FAMILY_STOPS.get(metadata.get("general.architecture", ""), [])
