"""YAML from users (app DSL imports, Dify exports, OpenAPI specs): no aliases, bounded size.

PyYAML's safe loader builds no objects beyond plain data, but it does expand aliases: a
560-byte document of nested `&a [*b, *b, ...]` anchors became a 6.6 MiB stored draft (the
"billion laughs"). Nothing Loom imports needs anchors, so an alias (or an anchor, its only
use) is refused outright, before any node is built, and the text itself is capped.

    load(text, max_chars=..., field=...) -> data     UntrustedYamlError(message, field) otherwise
"""

from __future__ import annotations

from typing import Any

import yaml

DEFAULT_MAX_CHARS = 2_000_000


class UntrustedYamlError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


class _NoAliasLoader(yaml.SafeLoader):
    """The pure-Python safe loader (the C one composes nodes where this check cannot reach)."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(None, None, "YAML anchors and aliases are not accepted",
                                              event.start_mark)
        return super().compose_node(parent, index)


def load(text: str, *, max_chars: int = DEFAULT_MAX_CHARS, field: str = "data") -> Any:
    if len(text) > max_chars:
        raise UntrustedYamlError(f"the document is {len(text)} characters, over the {max_chars} limit", field)
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as exc:
        raise UntrustedYamlError(f"not valid YAML: {exc}", field) from None
