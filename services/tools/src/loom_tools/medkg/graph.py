"""The medical knowledge graph (migration 0030_medkg.sql): entities and the relations between
them, loaded once from Postgres (only migrations write it), and found in free text by name or
synonym, so a model's draft or a patient's "asthma, stomach ulcer" maps onto graph nodes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg

MAX_TEXT = 20_000  # characters of one text searched for entities


@dataclass(frozen=True)
class Entity:
    id: str
    kind: str           # drug | drug_class | condition | lab_test | red_flag
    name: str
    synonyms: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def pattern(self) -> re.Pattern[str]:
        # Longest names first, so "total cholesterol" wins over "cholesterol"; whole words only.
        names = sorted({self.name.lower(), *(s.lower() for s in self.synonyms)}, key=len, reverse=True)
        return re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(n) for n in names) + r")(?![\w-])", re.IGNORECASE)


@dataclass(frozen=True)
class Relation:
    subject: str
    relation: str       # member_of | contraindicated_in | interacts_with | treats
    object: str
    severity: str = ""
    reason: str = ""


class Graph:
    def __init__(self, entities: list[Entity], relations: list[Relation]) -> None:
        self.entities = {e.id: e for e in entities}
        self.relations = relations
        self._patterns = {e.id: e.pattern() for e in entities}

    def of_kind(self, *kinds: str) -> list[Entity]:
        return [e for e in self.entities.values() if e.kind in kinds]

    def find(self, text: str, *kinds: str) -> list[Entity]:
        """The entities of these kinds named in `text`, in the order they first appear."""
        text = text[:MAX_TEXT]
        hits = []
        for e in self.of_kind(*kinds):
            m = self._patterns[e.id].search(text)
            if m:
                hits.append((m.start(), e))
        return [e for _, e in sorted(hits, key=lambda h: h[0])]

    def mentions(self, text: str, entity_id: str) -> bool:
        return bool(self._patterns[entity_id].search(text))

    def classes(self, drug_id: str) -> list[str]:
        return [r.object for r in self.relations if r.subject == drug_id and r.relation == "member_of"]

    def related(self, subject_ids: set[str], relation: str) -> list[Relation]:
        return [r for r in self.relations if r.relation == relation and r.subject in subject_ids]

    def describe(self, e: Entity) -> dict[str, Any]:
        """An entity with its edges, as `medkg.lookup` answers it."""
        ids = {e.id, *self.classes(e.id)}
        out: dict[str, Any] = {"id": e.id, "kind": e.kind, "name": e.name, "synonyms": list(e.synonyms)}
        if e.attrs:
            out["attrs"] = e.attrs
        if e.kind == "drug":
            out["classes"] = [self.entities[c].name for c in self.classes(e.id)]
            out["treats"] = [self.entities[r.object].name for r in self.related({e.id}, "treats")]
        if e.kind in ("drug", "drug_class"):
            out["contraindicated_in"] = [{"condition": self.entities[r.object].name, "severity": r.severity,
                                          "reason": r.reason} for r in self.related(ids, "contraindicated_in")]
            out["interacts_with"] = [{"with": self.entities[other].name, "severity": r.severity, "reason": r.reason}
                                     for r, other in self.interactions(ids)]
        if e.kind == "condition":
            out["contraindicated"] = [{"drug": self.entities[r.subject].name, "severity": r.severity,
                                       "reason": r.reason} for r in self.relations
                                      if r.relation == "contraindicated_in" and r.object == e.id]
        return out

    def interactions(self, ids: set[str]) -> list[tuple[Relation, str]]:
        """interacts_with edges touching any of `ids`, read both ways: (edge, the other end)."""
        out = []
        for r in self.relations:
            if r.relation != "interacts_with":
                continue
            if r.subject in ids:
                out.append((r, r.object))
            elif r.object in ids:
                out.append((r, r.subject))
        return out


async def load(pool: asyncpg.Pool) -> Graph:
    async with pool.acquire() as conn:
        ents = await conn.fetch("SELECT id, kind, name, synonyms, attrs FROM medkg_entities ORDER BY id")
        rels = await conn.fetch("SELECT subject, relation, object, severity, reason FROM medkg_relations "
                                "ORDER BY subject, relation, object")
    entities = [Entity(r["id"], r["kind"], r["name"], tuple(r["synonyms"]),
                       r["attrs"] if isinstance(r["attrs"], dict) else json.loads(r["attrs"] or "{}")) for r in ents]
    return Graph(entities, [Relation(*r) for r in rels])
