"""The medical-agent template's tools over a small knowledge graph in Postgres (SAMPLE DATA,
not medical advice): `medkg.lookup`, `medkg.check` (contraindications and interactions of
the drugs a draft proposes), `medkg.labs` (lab values read from a report's text, flagged
against reference ranges) and `medkg.review` (the compliance rules a draft answer must meet).

graph.py loads the graph and finds its entities in text; check.py, labs.py and review.py are
the domain logic, pure functions of a loaded graph; tools.py holds the specs and the runner.
"""
