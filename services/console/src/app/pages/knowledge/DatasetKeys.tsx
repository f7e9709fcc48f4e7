/**
 * The workspace's dataset API keys (the Dify knowledge API's `dataset-…` keys): create (shown
 * once), revoke, and a curl example. Shown to roles with `dataset_keys.manage`.
 */
import { ApiKeys } from "../../apiKeys";
import { useWorkspace } from "../../workspace";

export function DatasetKeys() {
  const { workspaceId } = useWorkspace();
  const example = `curl '${window.location.origin}/v1/datasets?page=1&limit=20' \\\n  -H 'Authorization: Bearer $LOOM_DATASET_KEY'`;
  return (
    <section className="subcard" aria-labelledby="dataset-keys-title">
      <h2 id="dataset-keys-title">Knowledge API keys</h2>
      <p className="muted">
        A dataset key reaches every dataset of this workspace through the knowledge API (<code>/v1/datasets</code>).
      </p>
      <ApiKeys
        path={`/console/api/workspaces/${workspaceId}/dataset-api-keys`}
        queryKey={["dataset-keys", workspaceId]}
        nameLabel="Dataset key name"
        createLabel="Create dataset key"
        emptyText="No knowledge API keys yet."
        tokenTestId="new-dataset-key"
        tableLabel="Knowledge API keys"
      />
      <pre className="code">{example}</pre>
    </section>
  );
}
