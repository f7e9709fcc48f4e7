/**
 * An app's conversations (chat, chatflow and agent apps), every end user's, most recently active
 * first, filtered by text, end user and feedback (GET …/apps/{id}/conversations); for the one
 * picked, its messages with the feedback end users gave through the service API (GET
 * …/conversations/{id}/messages), each able to open its run's trace.
 */
import { useDeferredValue, useState } from "react";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { api } from "../../api";
import { Empty, ErrorMessage, Loading, formatTime } from "../../ui";
import { useWorkspace } from "../../workspace";
import { AnswerText } from "../../AnswerText";
import { RunTrace } from "./LogsTab";

interface ConversationRow {
  id: string;
  name: string;
  end_user: string;
  message_count: number;
  likes: number;
  dislikes: number;
  updated_at: number;
}

interface MessageRow {
  id: string;
  run_id: string;
  query: string;
  answer: string;
  status: string;
  error: string | null;
  feedback: { rating: "like" | "dislike"; content: string | null } | null;
  created_at: number;
}

type FeedbackFilter = "" | "like" | "dislike" | "any";

export function ConversationsLog({ appId }: { appId: string }) {
  const { workspaceId } = useWorkspace();
  const [keyword, setKeyword] = useState("");
  const [user, setUser] = useState("");
  const [feedback, setFeedback] = useState<FeedbackFilter>("");
  const [page, setPage] = useState(1);
  const [selected, setSelected] = useState<string | null>(null);
  const filters = useDeferredValue({ keyword: keyword.trim(), user: user.trim(), feedback, page });
  const params = new URLSearchParams({ page: String(filters.page), limit: "20" });
  if (filters.keyword) params.set("keyword", filters.keyword);
  if (filters.user) params.set("user", filters.user);
  if (filters.feedback) params.set("feedback", filters.feedback);
  const list = useQuery({
    queryKey: ["conversations", appId, params.toString()],
    queryFn: () =>
      api<{ data: ConversationRow[]; total: number; has_more: boolean }>(
        "GET",
        `/console/api/workspaces/${workspaceId}/apps/${appId}/conversations?${params}`,
      ),
    placeholderData: keepPreviousData,
    refetchInterval: 5000,
  });
  const filter = <T,>(set: (v: T) => void) => (v: T) => {
    set(v);
    setPage(1);
  };

  return (
    <div className="split">
      <section aria-labelledby="conversations-title" className="stack">
        <h2 id="conversations-title">Conversations</h2>
        <div className="row filters">
          <label className="sr-only" htmlFor="conv-keyword">Search conversations</label>
          <input id="conv-keyword" type="search" placeholder="Search queries and answers" maxLength={200} value={keyword}
            onChange={(e) => filter(setKeyword)(e.target.value)} />
          <label className="sr-only" htmlFor="conv-user">End user</label>
          <input id="conv-user" placeholder="End user" maxLength={255} value={user} onChange={(e) => filter(setUser)(e.target.value)} />
          <label className="sr-only" htmlFor="conv-feedback">Feedback</label>
          <select id="conv-feedback" value={feedback} onChange={(e) => filter(setFeedback)(e.target.value as FeedbackFilter)}>
            <option value="">With or without feedback</option>
            <option value="like">Liked</option>
            <option value="dislike">Disliked</option>
            <option value="any">Any feedback</option>
          </select>
        </div>
        {list.isLoading ? (
          <Loading label="Loading conversations…" />
        ) : list.error ? (
          <ErrorMessage error={list.error} />
        ) : !list.data?.data.length ? (
          <Empty>No conversations{filters.keyword || filters.user || filters.feedback ? " match these filters" : " yet"}.</Empty>
        ) : (
          <>
            <table className="selectable" aria-label="Conversations">
              <thead>
                <tr>
                  <th>Conversation</th>
                  <th>End user</th>
                  <th>Messages</th>
                  <th>Likes</th>
                  <th>Dislikes</th>
                  <th>Last active</th>
                </tr>
              </thead>
              <tbody>
                {list.data.data.map((c) => (
                  <tr key={c.id} aria-selected={selected === c.id}>
                    <td>
                      <button type="button" className="link" onClick={() => setSelected(c.id)}>{c.name}</button>
                    </td>
                    <td><code>{c.end_user}</code></td>
                    <td>{c.message_count}</td>
                    <td>{c.likes}</td>
                    <td>{c.dislikes}</td>
                    <td>{formatTime(c.updated_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <div className="row">
              <button type="button" className="secondary" disabled={page <= 1} onClick={() => setPage(page - 1)}>Previous</button>
              <span className="muted">Page {page} · {list.data.total} conversations</span>
              <button type="button" className="secondary" disabled={!list.data.has_more} onClick={() => setPage(page + 1)}>Next</button>
            </div>
          </>
        )}
      </section>
      <section aria-labelledby="messages-title" className="stack">
        <h2 id="messages-title">Messages</h2>
        {selected ? <Messages appId={appId} conversationId={selected} /> : <Empty>Pick a conversation to read it.</Empty>}
      </section>
    </div>
  );
}

function Messages({ appId, conversationId }: { appId: string; conversationId: string }) {
  const { workspaceId } = useWorkspace();
  const [trace, setTrace] = useState<string | null>(null);
  const messages = useQuery({
    queryKey: ["conversation-messages", conversationId],
    queryFn: () =>
      api<{ data: MessageRow[]; conversation: { name: string; end_user: string } }>(
        "GET",
        `/console/api/workspaces/${workspaceId}/apps/${appId}/conversations/${conversationId}/messages`,
      ),
    refetchInterval: 5000,
  });
  if (messages.isLoading) return <Loading label="Loading messages…" />;
  if (messages.error) return <ErrorMessage error={messages.error} />;
  return (
    <div className="stack" data-testid="conversation-messages">
      <p className="muted">
        {messages.data?.conversation.name} · <code>{messages.data?.conversation.end_user}</code>
      </p>
      <ol className="trace">
        {(messages.data?.data ?? []).map((m) => (
          <li key={m.id} className="stack" data-testid="conversation-message">
            <p><strong>User:</strong> {m.query}</p>
            <p className="answer"><strong>Answer:</strong> {m.answer ? <AnswerText answer={m.answer} /> : <span className="muted">({m.status})</span>}</p>
            {m.error && <div className="error">{m.error}</div>}
            <div className="row">
              <span className="muted">{formatTime(m.created_at)}</span>
              {m.feedback ? (
                <span className={`status status-${m.feedback.rating === "like" ? "succeeded" : "failed"}`} data-testid="message-feedback">
                  {m.feedback.rating === "like" ? "Liked" : "Disliked"}
                  {m.feedback.content ? `: “${m.feedback.content}”` : ""}
                </span>
              ) : (
                <span className="muted">No feedback</span>
              )}
              <button type="button" className="link" onClick={() => setTrace(trace === m.run_id ? null : m.run_id)}>
                {trace === m.run_id ? "Hide trace" : "Show trace"}
              </button>
            </div>
            {trace === m.run_id && <RunTrace appId={appId} runId={m.run_id} />}
          </li>
        ))}
      </ol>
    </div>
  );
}
