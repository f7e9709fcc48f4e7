/** One dataset: documents (upload, live indexing, chunks), retrieval testing and settings. */
import { useQuery } from "@tanstack/react-query";
import { Link, useNavigate, useParams } from "react-router-dom";
import { api } from "../api";
import { can } from "../rbac";
import { ErrorMessage, Loading, Tabs } from "../ui";
import { kbHeaders, useWorkspace } from "../workspace";
import type { Dataset } from "./KnowledgePage";
import { DatasetSettings } from "./knowledge/DatasetSettings";
import { Documents } from "./knowledge/Documents";
import { RetrievalTest } from "./knowledge/RetrievalTest";

export function useDataset(workspaceId: string, datasetId: string) {
  return useQuery({
    queryKey: ["dataset", workspaceId, datasetId],
    queryFn: () => api<Dataset>("GET", `/v1/datasets/${datasetId}`, undefined, { headers: kbHeaders(workspaceId) }),
  });
}

export function DatasetPage() {
  const { datasetId = "", tab = "documents" } = useParams();
  const { workspaceId, role, base } = useWorkspace();
  const navigate = useNavigate();
  const dataset = useDataset(workspaceId, datasetId);
  const tabs = [
    { id: "documents", label: "Documents" },
    { id: "retrieval", label: "Retrieval testing" },
    ...(can(role, "datasets.write") ? [{ id: "settings", label: "Settings" }] : []),
  ];
  const current = tabs.some((t) => t.id === tab) ? tab : "documents";
  if (dataset.isLoading) return <Loading label="Loading the dataset…" />;
  if (dataset.error || !dataset.data) return <ErrorMessage error={dataset.error ?? "Dataset not found"} />;
  return (
    <section aria-labelledby="dataset-title" className="stack">
      <header className="page-header">
        <div>
          <p className="crumbs"><Link to={`${base}/knowledge`}>Knowledge</Link> /</p>
          <h1 id="dataset-title">{dataset.data.name}</h1>
          <p className="muted small">
            {dataset.data.document_count} documents · embedding model {dataset.data.embedding_model || "default"}
          </p>
        </div>
      </header>
      <Tabs tabs={tabs} current={current} onSelect={(id) => navigate(`${base}/knowledge/${datasetId}/${id}`)} />
      <div role="tabpanel" id={`panel-${current}`} aria-labelledby={`tab-${current}`} className="tabpanel">
        {current === "documents" && <Documents dataset={dataset.data} />}
        {current === "retrieval" && <RetrievalTest dataset={dataset.data} />}
        {current === "settings" && <DatasetSettings dataset={dataset.data} />}
      </div>
    </section>
  );
}
