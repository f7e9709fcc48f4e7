"""knowledge-retrieval: rag `Retrieve` over the node's datasets; `result` is Dify's list of
{content, title, metadata} (the shape LLM context and the gateway's retriever_resources use)."""

from __future__ import annotations

from loom_common.dsl.ai_nodes import KnowledgeRetrievalData
from loom_orchestrator.engine.context import NodeContext, NodeResult
from loom_orchestrator.engine.node import Node
from loom_orchestrator.engine.ports import RetrievalQuery
from loom_orchestrator.engine.variables import to_text


class KnowledgeRetrievalNode(Node[KnowledgeRetrievalData]):
    type, version = "knowledge-retrieval", "1"

    async def run(self, data: KnowledgeRetrievalData, ctx: NodeContext) -> NodeResult:
        if ctx.services.retriever is None:
            raise RuntimeError("no rag service configured for knowledge-retrieval nodes")
        query = to_text(ctx.pool.get(data.query_variable_selector))
        cfg = data.multiple_retrieval_config
        conditions = data.metadata_filtering_conditions if data.metadata_filtering_mode == "manual" else None
        q = RetrievalQuery(tenant_id=ctx.run.tenant_id, dataset_ids=data.dataset_ids, query=query,
                           top_k=cfg.top_k if data.retrieval_mode == "multiple" else 1, method=data.search_method,
                           score_threshold=cfg.score_threshold, rerank=cfg.reranking_enable,
                           vector_weight=cfg.vector_weight, keyword_weight=cfg.keyword_weight,
                           filters=conditions.filters() if conditions else [],
                           filter_logic=conditions.logical_operator if conditions else "and")
        chunks = await ctx.services.retriever.retrieve(q, ctx.timeout_s) if query else []
        inputs = {"query": query, **({"metadata_filtering_conditions": conditions.model_dump()} if conditions else {})}
        return NodeResult(inputs=inputs, outputs={"result": chunks},
                          citations=[c for c in chunks if isinstance(c, dict)])
