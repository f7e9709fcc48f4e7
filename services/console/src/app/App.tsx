/** The console's routes. The editor is a lazily loaded chunk (see vite.config.ts). */
import { lazy, Suspense } from "react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { BrowserRouter, Route, Routes } from "react-router-dom";

const EditorPage = lazy(() => import("../editor/index"));

const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false, refetchOnWindowFocus: false } } });

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <Suspense fallback={<p role="status">Loading…</p>}>
          <Routes>
            <Route path="/editor/:ws/:app" element={<EditorPage workspaceId="" appId="" role="normal" />} />
            <Route path="*" element={<h1>Loom</h1>} />
          </Routes>
        </Suspense>
      </BrowserRouter>
    </QueryClientProvider>
  );
}
