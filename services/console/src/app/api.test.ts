import { afterEach, describe, expect, it, vi } from "vitest";
import { api, ApiError, stream } from "./api";

// api.ts reads tokens from localStorage; node has none, so give it a tiny in-memory one.
const store = new Map<string, string>();
vi.stubGlobal("localStorage", {
  getItem: (k: string) => store.get(k) ?? null,
  setItem: (k: string, v: string) => void store.set(k, v),
  removeItem: (k: string) => void store.delete(k),
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.stubGlobal("localStorage", {
    getItem: (k: string) => store.get(k) ?? null,
    setItem: (k: string, v: string) => void store.set(k, v),
    removeItem: (k: string) => void store.delete(k),
  });
  store.clear();
});

describe("api", () => {
  it("throws the gateway's message and field as ApiError", async () => {
    vi.stubGlobal("fetch", async () =>
      new Response(JSON.stringify({ code: "invalid_param", message: "name: too long", status: 400, field: "name" }), {
        status: 400,
        headers: { "Content-Type": "application/json" },
      }),
    );
    const err = await api("POST", "/console/api/x", { name: "y" }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: "invalid_param", message: "name: too long", field: "name" });
  });

  it("refreshes the token once on 401 and retries", async () => {
    store.set("loom.session", JSON.stringify({ access_token: "old", refresh_token: "r" }));
    const seen: string[] = [];
    vi.stubGlobal("fetch", async (path: string, init: RequestInit) => {
      const auth = new Headers(init.headers).get("Authorization") ?? "";
      seen.push(`${path} ${auth}`);
      if (path.endsWith("/refresh-token")) return Response.json({ access_token: "new", refresh_token: "r2" });
      return auth === "Bearer new" ? Response.json({ ok: true }) : new Response("{}", { status: 401 });
    });
    expect(await api("GET", "/console/api/account")).toEqual({ ok: true });
    expect(seen).toEqual([
      "/console/api/account Bearer old",
      "/console/api/refresh-token ",
      "/console/api/account Bearer new",
    ]);
  });
});

describe("stream", () => {
  it("parses data lines split across chunks", async () => {
    const parts = ['data: {"event":"a"}\n\ndata: {"ev', 'ent":"b"}\n\n', ": ping\n\n"];
    vi.stubGlobal("fetch", async () =>
      new Response(
        new ReadableStream({
          start(c) {
            parts.forEach((p) => c.enqueue(new TextEncoder().encode(p)));
            c.close();
          },
        }),
        { headers: { "Content-Type": "text/event-stream" } },
      ),
    );
    const events: unknown[] = [];
    await stream("/x", {}, (e) => events.push(e.event));
    expect(events).toEqual(["a", "b"]);
  });
});
