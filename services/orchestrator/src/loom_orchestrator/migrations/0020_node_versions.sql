-- Node protocol (engine/node.py): each node execution keeps the version of the node's code that
-- ran it (a resumed run refuses to replay a node whose version changed), and what it did to the
-- run (answer text, citations, the workflow's outputs, a loop's end), replayed whatever its type.
ALTER TABLE node_executions ADD COLUMN IF NOT EXISTS node_version text;
ALTER TABLE node_executions ADD COLUMN IF NOT EXISTS effects jsonb;

-- Rows of runs still to finish were journaled by the code before this migration: its node
-- versions ('2' for assigner, '1' for every other type) and the effects its engine derived
-- from each type's outputs, so such a run resumes after the deploy as it would have before.
UPDATE node_executions n SET
    node_version = CASE n.node_type WHEN 'assigner' THEN '2' ELSE '1' END,
    effects = CASE n.node_type
        WHEN 'answer' THEN jsonb_build_object('answer', coalesce(n.outputs ->> 'answer', ''))
        WHEN 'knowledge-retrieval' THEN jsonb_build_object('citations', coalesce(
            (SELECT jsonb_agg(c) FROM jsonb_array_elements(
                CASE jsonb_typeof(n.outputs -> 'result') WHEN 'array' THEN n.outputs -> 'result' ELSE '[]' END) c
             WHERE jsonb_typeof(c) = 'object'), '[]'::jsonb))
        WHEN 'end' THEN jsonb_build_object('run_outputs', coalesce(n.outputs, '{}'::jsonb))
        WHEN 'loop-end' THEN jsonb_build_object('loop_end', true)
    END
FROM runs r
WHERE r.id = n.run_id AND n.node_version IS NULL
  AND r.status NOT IN ('succeeded', 'partial-succeeded', 'failed', 'stopped');
