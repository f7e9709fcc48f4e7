"""Node types: one module per type, each a `Node[Config]` (engine/node.py) declaring its
`type`, `version` and `traits`, with `async run(data, ctx) -> NodeResult`. The typed config of
each lives in `loom_common.dsl` (shared with the gateway)."""

from __future__ import annotations

from loom_orchestrator.engine.node import NodeRegistry


def registry() -> NodeRegistry:
    """Every node type this worker runs, by its DSL type."""
    from loom_orchestrator.nodes import (
        agent,
        answer,
        assigner,
        code,
        document_extractor,
        end,
        http_request,
        human_input,
        if_else,
        iteration,
        knowledge_retrieval,
        list_operator,
        llm,
        loop,
        parameter_extractor,
        question_classifier,
        start,
        template_transform,
        tool,
        variable_aggregator,
    )

    nodes = [start.StartNode(), end.EndNode(), answer.AnswerNode(), llm.LLMNode(),
             knowledge_retrieval.KnowledgeRetrievalNode(), if_else.IfElseNode(),
             question_classifier.QuestionClassifierNode(), parameter_extractor.ParameterExtractorNode(),
             code.CodeNode(), template_transform.TemplateTransformNode(), http_request.HttpRequestNode(),
             tool.ToolNode(), variable_aggregator.VariableAggregatorNode(), assigner.VariableAssignerNode(),
             iteration.IterationNode(), iteration.IterationStartNode(), loop.LoopNode(), loop.LoopStartNode(),
             loop.LoopEndNode(), agent.AgentNode(), list_operator.ListOperatorNode(),
             document_extractor.DocumentExtractorNode(), human_input.HumanInputNode()]
    return NodeRegistry.of(nodes)
