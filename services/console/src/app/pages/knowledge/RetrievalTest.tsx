/** Retrieval testing: a query against the dataset, the ranked chunks with their scores and the method used. */
import { useState, type FormEvent } from "react";
import { useMutation } from "@tanstack/react-query";
import { api } from "../../api";
import { Empty, ErrorMessage, Field } from "../../ui";
import { kbHeaders, useWorkspace } from "../../workspace";
import { SEARCH_METHODS, SearchMethodSelect, type Dataset } from "../KnowledgePage";
import type { Schema } from "../../schemas";

interface RetrieveAnswer {
  query: { content: string };
  records: { score: number; segment: { id: string; content: string; position: number; document: { name: string } } }[];
}

export function RetrievalTest({ dataset }: { dataset: Dataset }) {
  const { workspaceId } = useWorkspace();
  const [query, setQuery] = useState("");
  const [method, setMethod] = useState(dataset.retrieval_model_dict?.search_method ?? "semantic_search");
  const [topK, setTopK] = useState(4);
  const [used, setUsed] = useState("");
  const search = useMutation({
    mutationFn: () =>
      api<RetrieveAnswer>(
        "POST",
        `/v1/datasets/${dataset.id}/retrieve`,
        { query, retrieval_model: { search_method: method, top_k: topK, reranking_enable: false } } satisfies Schema<"RetrieveBody">,
        { headers: kbHeaders(workspaceId) },
      ),
    onSuccess: () => setUsed(method),
  });
  return (
    <div className="stack">
      <form
        className="row"
        aria-label="Retrieval test"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          search.mutate();
        }}
      >
        <Field label="Query">{(id) => <input id={id} required maxLength={10000} value={query} onChange={(e) => setQuery(e.target.value)} className="wide" />}</Field>
        <Field label="Method">
          {(id) => <SearchMethodSelect id={id} value={method} onChange={setMethod} />}
        </Field>
        <Field label="Top K">{(id) => <input id={id} type="number" min={1} max={50} value={topK} onChange={(e) => setTopK(Number(e.target.value))} />}</Field>
        <button type="submit" disabled={search.isPending}>{search.isPending ? "Searching…" : "Test retrieval"}</button>
      </form>
      <ErrorMessage error={search.error} />
      {search.data &&
        (search.data.records.length === 0 ? (
          <Empty>No chunk matched.</Empty>
        ) : (
          <>
            <p className="muted" data-testid="retrieval-method">
              {search.data.records.length} chunks by {SEARCH_METHODS.find((m) => m.id === used)?.label ?? used}
            </p>
            <ol className="chunks" data-testid="retrieval-results">
              {search.data.records.map((r, i) => (
                <li key={`${r.segment.id}-${i}`}>
                  <header className="row">
                    <strong className="score">score {r.score.toFixed(3)}</strong>
                    <span className="muted small">{r.segment.document?.name} · chunk #{r.segment.position}</span>
                  </header>
                  <p className="chunk-text">{r.segment.content}</p>
                </li>
              ))}
            </ol>
          </>
        ))}
    </div>
  );
}
