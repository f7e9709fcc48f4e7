/**
 * The one HTTP client of the console. Every request goes to the same origin (server.mjs, or
 * Vite's dev server, proxies /console/api and /v1 to the gateway), carries the access token,
 * and on a 401 refreshes the token once and retries. Failures become `ApiError` carrying the
 * gateway's `{code, message, status, field?}` so pages can show the API's own message.
 *
 *   api<T>(method, path, body?, options?)   JSON in, parsed JSON out (FormData goes as multipart)
 *   stream(path, body, onEvent, signal?)     a POST answered with text/event-stream; onEvent per `data:`
 *   upload<T>(path, form, onProgress, ...)   multipart with upload progress (XHR: fetch has none)
 */
import { loadTokens, saveTokens, type Tokens } from "./session";

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field?: string;

  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

// One refresh at a time: concurrent 401s wait for the same refresh instead of racing.
let refreshing: Promise<boolean> | null = null;

async function refreshTokens(): Promise<boolean> {
  const tokens = loadTokens();
  if (!tokens?.refresh_token) return false;
  refreshing ??= (async () => {
    try {
      const res = await fetch("/console/api/refresh-token", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: tokens.refresh_token }),
      });
      if (!res.ok) {
        saveTokens(null);
        return false;
      }
      saveTokens((await res.json()) as Tokens);
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function headersFor(body: unknown, extra?: HeadersInit): Headers {
  const headers = new Headers(extra);
  const tokens = loadTokens();
  if (tokens && !headers.has("Authorization")) headers.set("Authorization", `Bearer ${tokens.access_token}`);
  if (body !== undefined && !(body instanceof FormData) && !headers.has("Content-Type")) {
    headers.set("Content-Type", "application/json");
  }
  return headers;
}

function encode(body: unknown): BodyInit | undefined {
  if (body === undefined) return undefined;
  if (body instanceof FormData) return body;
  return JSON.stringify(body);
}

/** Turn a failed response into an ApiError, keeping the gateway's message when it sent one. */
export async function errorFrom(res: Response): Promise<ApiError> {
  let code = "error";
  let message = `${res.status} ${res.statusText}`.trim();
  let field: string | undefined;
  try {
    const data = (await res.json()) as { code?: string; message?: string; field?: string; detail?: unknown };
    code = data.code ?? code;
    message = data.message ?? (typeof data.detail === "string" ? data.detail : message);
    field = data.field;
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(res.status, code, message, field);
}

/** Fetch with the session's token, refreshing once on 401. */
export async function authFetch(path: string, init: RequestInit & { body?: BodyInit | null }, raw?: unknown): Promise<Response> {
  const send = () => fetch(path, { ...init, headers: headersFor(raw, init.headers) });
  let res = await send();
  if (res.status === 401 && !path.endsWith("/login") && (await refreshTokens())) res = await send();
  return res;
}

export interface ApiOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export async function api<T = unknown>(method: Method, path: string, body?: unknown, options?: ApiOptions): Promise<T> {
  let res: Response;
  try {
    res = await authFetch(path, { method, body: encode(body), headers: options?.headers, signal: options?.signal }, body);
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    throw new ApiError(0, "network_error", `The gateway could not be reached (${(err as Error).message}).`);
  }
  if (!res.ok) throw await errorFrom(res);
  if (res.status === 204) return undefined as T;
  const type = res.headers.get("Content-Type") ?? "";
  return (type.includes("json") ? await res.json() : await res.text()) as T;
}

export type StreamEvent = Record<string, unknown> & { event?: string };

/**
 * POST `body` and call `onEvent` with each parsed `data:` payload of the SSE answer. Resolves
 * when the stream ends; abort it with `signal`. A non-2xx answer throws ApiError before any event.
 */
export async function stream(
  path: string,
  body: unknown,
  onEvent: (event: StreamEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const res = await authFetch(
    path,
    { method: "POST", body: encode(body), signal, headers: { Accept: "text/event-stream" } },
    body,
  );
  if (!res.ok) throw await errorFrom(res);
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    // Events are separated by a blank line; a chunk may end mid-event, so keep the tail.
    let cut: number;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data) continue;
      try {
        onEvent(JSON.parse(data) as StreamEvent);
      } catch {
        /* a non-JSON data line (e.g. a keep-alive) is not an event */
      }
    }
  }
}

/**
 * POST a multipart form, reporting upload progress (0..1). Refreshes the token once on 401, like
 * api(). Resolves with the parsed JSON answer; rejects with ApiError.
 */
export async function upload<T = unknown>(
  path: string,
  form: FormData,
  onProgress: (fraction: number) => void,
  headers: Record<string, string> = {},
): Promise<T> {
  const send = () =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      const tokens = loadTokens();
      if (tokens) xhr.setRequestHeader("Authorization", `Bearer ${tokens.access_token}`);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText });
      xhr.onerror = () => reject(new ApiError(0, "network_error", "The upload was interrupted."));
      xhr.send(form);
    });
  let res = await send();
  if (res.status === 401 && (await refreshTokens())) res = await send();
  let data: { code?: string; message?: string; field?: string } = {};
  try {
    data = JSON.parse(res.text);
  } catch {
    /* not JSON */
  }
  if (res.status < 200 || res.status >= 300) {
    throw new ApiError(res.status, data.code ?? "error", data.message ?? `upload failed (${res.status})`, data.field);
  }
  onProgress(1);
  return data as T;
}
