"""Annotation reply (Dify's): an app's curated question/answer pairs, and the match of a chat
query against them.

    enable(threshold, model)  -> every annotated question embedded with `model` (inference Embed,
                                 the gRPC the rag service embeds through), settings stored
    create/update             -> the question embedded at once while the reply is enabled
    match(query)              -> the query embedded, cosine against the app's embedded questions;
                                 the best one at or above the threshold answers (or None)
    record_hit(message)       -> the hit row for the message, and the annotation's hit_count + 1

Where the match runs: in the gateway, before the run is dispatched (service_runs.chat). The
annotations are the gateway's rows (the orchestrator never reads the gateway's tables), and a
hit costs one embedding call rather than a queued run that would embed the query anyway. The
orchestrator still emits the answer (RunRequested.annotation_reply), since only it publishes
run events: the reply streams, resumes and is recorded like any other answer.

The app's vectors are compared in process (numpy): an app holds at most MAX_PER_APP
annotations, a few MB of float32, so no vector index is needed in the gateway's schema.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import numpy as np

from loom_common.events import AnnotationReply
from loom_common.ids import new_id
from loom_common.logging import get_logger
from loom_gateway.domain.errors import ApiError, BadRequest, Conflict, NotFound

log = get_logger(__name__)

MAX_PER_APP = 10_000
MAX_TEXT = 10_000  # characters of a question or an answer


class Embedder(Protocol):
    async def embed(self, model: str, inputs: list[str], tenant_id: str) -> tuple[str, list[list[float]], int]: ...


@dataclass(frozen=True)
class Match:
    annotation_id: str
    answer: str
    score: float

    def reply(self) -> AnnotationReply:
        """What rides on the run request (the orchestrator streams it, no model called)."""
        return AnnotationReply(id=self.annotation_id, answer=self.answer, score=self.score)


def annotation_body(r: asyncpg.Record) -> dict:
    return {"id": r["id"], "question": r["question"], "answer": r["answer"], "hit_count": r["hit_count"],
            "created_at": int(r["created_at"].timestamp())}


def _text(value: str, field: str) -> str:
    if not value.strip():
        raise BadRequest(f"{field} must not be empty", field=field)
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{field} is longer than {MAX_TEXT} characters", field=field)
    return value


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# An app found without annotation reply is not looked up again for this long by this process:
# every chat asks (`match`), and almost every app has it off (a round trip per chat run saved).
# A change through this process applies at once; another replica sees an enable within this.
REPLY_OFF_CACHE_S = 2.0
_REPLY_OFF_MAX = 10_000  # apps remembered at most


class Annotations:
    def __init__(self, pool: asyncpg.Pool, embedder: Embedder, batch: int = 64):
        self.pool, self.embedder, self.batch = pool, embedder, batch
        self._reply_off: dict[tuple[str, str], float] = {}  # (tenant, app) -> until (monotonic)
        self._generation = 0  # bumped by set_reply: a lookup begun before a change caches nothing

    async def _settings(self, conn, tenant_id: str, app_id: str) -> asyncpg.Record | None:
        return await conn.fetchrow("SELECT * FROM app_annotation_settings WHERE app_id = $1 AND tenant_id = $2",
                                   app_id, tenant_id)

    async def _vector(self, tenant_id: str, model: str, text: str) -> list[float]:
        _, vectors, _ = await self.embedder.embed(model, [text], tenant_id)
        return vectors[0]

    # ---- CRUD -------------------------------------------------------------------------------

    async def page(self, tenant_id: str, app_id: str, page: int, limit: int, keyword: str = "") -> dict:
        like = f"%{_escape_like(keyword)}%" if keyword else None
        where = "tenant_id = $1 AND app_id = $2 AND ($3::text IS NULL OR question ILIKE $3 OR answer ILIKE $3)"
        rows = await self.pool.fetch(f"SELECT * FROM app_annotations WHERE {where} ORDER BY created_at DESC, id"
                                     " LIMIT $4 OFFSET $5", tenant_id, app_id, like, limit, (page - 1) * limit)
        total = await self.pool.fetchval(f"SELECT count(*) FROM app_annotations WHERE {where}", tenant_id, app_id,
                                         like)
        return {"data": [annotation_body(r) for r in rows], "has_more": page * limit < total, "limit": limit,
                "total": total, "page": page}

    async def create(self, tenant_id: str, app_id: str, question: str, answer: str, actor: str | None) -> dict:
        question, answer = _text(question, "question"), _text(answer, "answer")
        async with self.pool.acquire() as conn:
            if await conn.fetchval("SELECT count(*) FROM app_annotations WHERE tenant_id = $1 AND app_id = $2",
                                   tenant_id, app_id) >= MAX_PER_APP:
                raise Conflict(f"an app holds at most {MAX_PER_APP} annotations", code="annotation_limit")
            s = await self._settings(conn, tenant_id, app_id)
        vector, model = None, None
        if s is not None and s["enabled"]:  # searchable at once
            model = s["embedding_model"]
            vector = await self._vector(tenant_id, model, question)
        row = await self.pool.fetchrow(
            "INSERT INTO app_annotations (id, tenant_id, app_id, question, answer, embedding, embedding_model,"
            " created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
            new_id(), tenant_id, app_id, question, answer, vector, model, actor)
        return annotation_body(row)

    async def update(self, tenant_id: str, app_id: str, annotation_id: str, question: str, answer: str) -> dict:
        question, answer = _text(question, "question"), _text(answer, "answer")
        async with self.pool.acquire() as conn:
            old = await conn.fetchrow("SELECT question FROM app_annotations WHERE id = $1 AND tenant_id = $2"
                                      " AND app_id = $3", annotation_id, tenant_id, app_id)
            if old is None:
                raise NotFound("Annotation not found.", code="not_found")
            s = await self._settings(conn, tenant_id, app_id)
        # A new question needs a new vector (old ones compare against the old text).
        if old["question"] != question and s is not None and s["enabled"]:
            vector, model = await self._vector(tenant_id, s["embedding_model"], question), s["embedding_model"]
            row = await self.pool.fetchrow(
                "UPDATE app_annotations SET question = $4, answer = $5, embedding = $6, embedding_model = $7,"
                " updated_at = now() WHERE id = $1 AND tenant_id = $2 AND app_id = $3 RETURNING *",
                annotation_id, tenant_id, app_id, question, answer, vector, model)
        else:
            row = await self.pool.fetchrow(
                "UPDATE app_annotations SET question = $4, answer = $5, updated_at = now(),"
                " embedding = CASE WHEN question = $4 THEN embedding END,"
                " embedding_model = CASE WHEN question = $4 THEN embedding_model END"
                " WHERE id = $1 AND tenant_id = $2 AND app_id = $3 RETURNING *",
                annotation_id, tenant_id, app_id, question, answer)
        if row is None:
            raise NotFound("Annotation not found.", code="not_found")
        return annotation_body(row)

    async def delete(self, tenant_id: str, app_id: str, annotation_id: str) -> None:
        done = await self.pool.execute("DELETE FROM app_annotations WHERE id = $1 AND tenant_id = $2 AND app_id = $3",
                                       annotation_id, tenant_id, app_id)
        if done == "DELETE 0":
            raise NotFound("Annotation not found.", code="not_found")

    # ---- reply settings ---------------------------------------------------------------------

    async def setting(self, tenant_id: str, app_id: str) -> dict:
        """Dify's console annotation-setting: {enabled, id, score_threshold, embedding_model}."""
        async with self.pool.acquire() as conn:
            s = await self._settings(conn, tenant_id, app_id)
        if s is None or not s["enabled"]:
            return {"enabled": False}
        return {"enabled": True, "id": app_id, "score_threshold": s["score_threshold"],
                "embedding_model": {"embedding_provider_name": s["embedding_provider"],
                                    "embedding_model_name": s["embedding_model"]}}

    async def set_reply(self, tenant_id: str, app_id: str, action: str, *, score_threshold: float | None = None,
                        provider: str = "", model: str | None = None) -> dict:
        """Enable (embed every annotation with `model`, then store the settings) or disable. Done
        within the call; the job row answers Dify's job-status route."""
        job_id = new_id()
        self._generation += 1
        self._reply_off.pop((tenant_id, app_id), None)
        await self.pool.execute("INSERT INTO app_annotation_jobs (id, tenant_id, app_id, action, status)"
                                " VALUES ($1, $2, $3, $4, 'processing')", job_id, tenant_id, app_id, action)
        try:
            if action == "enable":
                if score_threshold is None or not math.isfinite(score_threshold) or not 0 <= score_threshold <= 1:
                    raise BadRequest("score_threshold must be between 0 and 1", field="score_threshold")
                if not model:
                    raise BadRequest("embedding_model_name is required", field="embedding_model_name")
                await self._embed_all(tenant_id, app_id, model)
                await self.pool.execute(
                    "INSERT INTO app_annotation_settings (app_id, tenant_id, enabled, score_threshold,"
                    " embedding_provider, embedding_model) VALUES ($1, $2, true, $3, $4, $5)"
                    " ON CONFLICT (app_id) DO UPDATE SET enabled = true, score_threshold = $3,"
                    " embedding_provider = $4, embedding_model = $5, updated_at = now()",
                    app_id, tenant_id, score_threshold, provider, model)
            else:
                await self.pool.execute("UPDATE app_annotation_settings SET enabled = false, updated_at = now()"
                                        " WHERE app_id = $1 AND tenant_id = $2", app_id, tenant_id)
        except ApiError as exc:
            await self._job_done(job_id, "error", exc.message)
            raise
        await self._job_done(job_id, "completed")
        return {"job_id": job_id, "job_status": "completed"}

    async def _job_done(self, job_id: str, status: str, error: str = "") -> None:
        await self.pool.execute("UPDATE app_annotation_jobs SET status = $2, error = $3 WHERE id = $1",
                                job_id, status, error[:1000])

    async def _embed_all(self, tenant_id: str, app_id: str, model: str) -> None:
        """Every annotation not yet embedded by `model`, in batches (an embedding failure leaves
        the reply as it was: the error goes back to the caller)."""
        while True:
            rows = await self.pool.fetch(
                "SELECT id, question FROM app_annotations WHERE tenant_id = $1 AND app_id = $2"
                " AND (embedding IS NULL OR embedding_model IS DISTINCT FROM $3) ORDER BY id LIMIT $4",
                tenant_id, app_id, model, self.batch)
            if not rows:
                return
            _, vectors, _ = await self.embedder.embed(model, [r["question"] for r in rows], tenant_id)
            await self.pool.executemany(
                "UPDATE app_annotations SET embedding = $2, embedding_model = $3 WHERE id = $1",
                [(r["id"], v, model) for r, v in zip(rows, vectors, strict=True)])

    async def job(self, tenant_id: str, app_id: str, action: str, job_id: str) -> dict:
        row = await self.pool.fetchrow("SELECT status, error FROM app_annotation_jobs WHERE id = $1"
                                       " AND tenant_id = $2 AND app_id = $3 AND action = $4",
                                       job_id, tenant_id, app_id, action)
        if row is None:
            raise NotFound("The job does not exist.", code="not_found")
        return {"job_id": job_id, "job_status": row["status"], "error_msg": row["error"]}

    # ---- the reply --------------------------------------------------------------------------

    async def match(self, tenant_id: str, app_id: str, query: str) -> Match | None:
        """The annotation answering `query`, if the app's reply is on and one is close enough.
        Embedding trouble is not the caller's: the query then goes to the model (logged)."""
        key = (tenant_id, app_id)
        until = self._reply_off.get(key)
        if until is not None and until > time.monotonic():
            return None
        generation = self._generation
        async with self.pool.acquire() as conn:
            s = await self._settings(conn, tenant_id, app_id)
            if s is None or not s["enabled"]:
                if generation == self._generation:
                    if len(self._reply_off) >= _REPLY_OFF_MAX:
                        self._reply_off.clear()
                    self._reply_off[key] = time.monotonic() + REPLY_OFF_CACHE_S
                return None
            rows = await conn.fetch(
                "SELECT id, answer, embedding FROM app_annotations WHERE tenant_id = $1 AND app_id = $2"
                " AND embedding IS NOT NULL AND embedding_model = $3 LIMIT $4",
                tenant_id, app_id, s["embedding_model"], MAX_PER_APP)
        if not rows:
            return None
        try:
            q = np.asarray(await self._vector(tenant_id, s["embedding_model"], query), dtype=np.float32)
        except ApiError as exc:
            log.warning("annotation match skipped: the query could not be embedded", app_id=app_id,
                        error=exc.message)
            return None
        m = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        if m.shape[1] != q.shape[0]:
            return None
        scores = (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q) + 1e-12)
        best = int(np.argmax(scores))
        score = float(scores[best])
        if score < s["score_threshold"]:
            return None
        return Match(rows[best]["id"], rows[best]["answer"], score)

    async def record_hit(self, tenant_id: str, app_id: str, match: Match, message_id: str, query: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO app_annotation_hits (message_id, tenant_id, app_id, annotation_id,"
                               " question, score) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                               message_id, tenant_id, app_id, match.annotation_id, query[:MAX_TEXT], match.score)
            await conn.execute("UPDATE app_annotations SET hit_count = hit_count + 1 WHERE id = $1 AND tenant_id = $2",
                               match.annotation_id, tenant_id)

    async def hits(self, tenant_id: str, app_id: str, annotation_id: str, page: int, limit: int) -> dict:
        """Dify's console hit histories of one annotation."""
        rows = await self.pool.fetch(
            "SELECT * FROM app_annotation_hits WHERE tenant_id = $1 AND app_id = $2 AND annotation_id = $3"
            " ORDER BY created_at DESC LIMIT $4 OFFSET $5", tenant_id, app_id, annotation_id, limit,
            (page - 1) * limit)
        total = await self.pool.fetchval("SELECT count(*) FROM app_annotation_hits WHERE tenant_id = $1"
                                         " AND app_id = $2 AND annotation_id = $3", tenant_id, app_id, annotation_id)
        return {"data": [{"id": r["message_id"], "message_id": r["message_id"], "question": r["question"],
                          "score": r["score"], "created_at": int(r["created_at"].timestamp())} for r in rows],
                "has_more": page * limit < total, "limit": limit, "total": total, "page": page}
