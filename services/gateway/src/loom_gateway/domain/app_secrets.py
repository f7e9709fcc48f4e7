"""Secret environment variables of an app (`value_type: secret`): sealed at rest, masked on the
way out, opened only for a run.

    stored (drafts, published versions)   "loom-sealed:<Fernet token>"     seal()
    shown (draft, export, versions)       "[__HIDDEN__]"                    mask()
    run (RunRequested.graph)              the real value                    reveal()

A client that saves a draft it read sends the mask back: the stored secret is kept (Dify's
console does the same with its `[__HIDDEN__]`). Any other value is the new secret, sealed with
the gateway's key (`sealing.py`). Values stored before sealing existed are sealed by a start-up
pass (`Apps.seal_stored_secrets`); until then they read as themselves.
"""

from __future__ import annotations

import copy
from typing import Any

from loom_gateway.domain.errors import BadRequest
from loom_gateway.domain.sealing import Sealer

MASK = "[__HIDDEN__]"
_PREFIX = "loom-sealed:"


def _secrets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    graph = (doc.get("workflow") or {}).get("graph") or {}
    return [v for v in graph.get("environment_variables") or []
            if isinstance(v, dict) and v.get("value_type") == "secret"]


def seal(doc: dict[str, Any], sealer: Sealer, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """A validated document as it is stored: each secret sealed; a masked one takes the value
    `stored` (the app's current draft) holds under that name."""
    out = copy.deepcopy(doc)
    kept = {v["name"]: v.get("value") for v in _secrets(stored or {})}
    for var in _secrets(out):
        value = var.get("value")
        if value == MASK:
            if var["name"] not in kept:
                raise BadRequest(f"secret {var['name']} has no stored value to keep: send its value",
                                 field=f"dsl.workflow.graph.environment_variables.{var['name']}")
            var["value"] = kept[var["name"]]
        elif value not in (None, "") and not (isinstance(value, str) and value.startswith(_PREFIX)):
            var["value"] = _PREFIX + sealer.seal(str(value)).decode()
    return out


def mask(doc: dict[str, Any]) -> dict[str, Any]:
    """What any reader of the app sees: secrets that have a value read as the mask."""
    out = copy.deepcopy(doc)
    for var in _secrets(out):
        if var.get("value") not in (None, ""):
            var["value"] = MASK
    return out


def reveal(doc: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    """The document a run gets: secrets opened (one that cannot be opened reads as empty)."""
    out = copy.deepcopy(doc)
    for var in _secrets(out):
        value = var.get("value")
        if isinstance(value, str) and value.startswith(_PREFIX):
            var["value"] = sealer.open(value[len(_PREFIX):].encode()) or ""
    return out
