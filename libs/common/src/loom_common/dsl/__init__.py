"""The workflow DSL: the app graph the gateway stores and the orchestrator runs.

    graph.py        Graph, Node, Edge, conversation/environment variables, parse_graph, DSLError
    base.py         what every node shares (retry, error strategy, timeout), selectors, conditions
    flow_nodes.py   start, end, answer, if-else, code, template, http, tool, aggregator, assigner,
                    iteration, loop
    ai_nodes.py     llm, knowledge-retrieval, question-classifier, parameter-extractor, agent
    list_nodes.py   list-operator, document-extractor
    human_input.py  human-input (the run pauses on a form) and the check of an answer
    references.py   `{{#node_id.field#}}` templates and selectors
    dify.py         import of a Dify DSL export
"""

from loom_common.dsl.graph import DSL_VERSION, NODE_TYPES, DSLError, Edge, Graph, Node, parse_graph

__all__ = ["DSL_VERSION", "NODE_TYPES", "DSLError", "Edge", "Graph", "Node", "parse_graph"]
