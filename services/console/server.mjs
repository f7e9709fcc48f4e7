#!/usr/bin/env node
/**
 * Serves the built console (dist/) with an SPA fallback and proxies the gateway's APIs, so the
 * browser talks to one origin and the gateway needs no CORS. Zero dependencies: Node's http only.
 *
 *   /console/api/*, /v1/*, /openapi.json  -> LOOM_GATEWAY_URL (default http://127.0.0.1:8080),
 *                                            streamed both ways (SSE passes unbuffered)
 *   a file under dist/                    -> that file (hashed assets cached for a year)
 *   anything else (GET)                   -> dist/index.html (the router decides)
 *   /healthz, /readyz                     -> probes (ready once dist/index.html exists)
 *
 * Settings: LOOM_CONSOLE_HOST (default 127.0.0.1), LOOM_CONSOLE_PORT (3000),
 * LOOM_CONSOLE_DIST (./dist beside this file), LOOM_GATEWAY_URL.
 * TLS, as every Loom process (docs/operations.md): LOOM_TLS_CERT_FILE + LOOM_TLS_KEY_FILE serve
 * HTTPS (TLS 1.3 only unless LOOM_TLS_MIN_VERSION=1.2); LOOM_TLS_CA_FILE is the CA an https
 * LOOM_GATEWAY_URL is verified against.
 */
import { createReadStream, readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const HOST = process.env.LOOM_CONSOLE_HOST ?? "127.0.0.1";
const PORT = Number(process.env.LOOM_CONSOLE_PORT ?? 3000);
const DIST = path.resolve(process.env.LOOM_CONSOLE_DIST ?? path.join(here, "dist"));
const GATEWAY = new URL(process.env.LOOM_GATEWAY_URL ?? "http://127.0.0.1:8080");
const PROXIED = ["/console/api/", "/v1/", "/openapi.json"];
const TLS_VERSIONS = { "1.3": "TLSv1.3", "1.2": "TLSv1.2" };

function tlsOptions(env) {
  const { LOOM_TLS_CERT_FILE: cert, LOOM_TLS_KEY_FILE: key, LOOM_TLS_MIN_VERSION: min = "1.3" } = env;
  if (!cert && !key) return null;
  if (!cert || !key) throw new Error("LOOM_TLS_CERT_FILE and LOOM_TLS_KEY_FILE go together: set both or neither");
  if (!TLS_VERSIONS[min]) throw new Error(`LOOM_TLS_MIN_VERSION: ${min} is not 1.3 or 1.2`);
  return { cert: readFileSync(cert), key: readFileSync(key), minVersion: TLS_VERSIONS[min], ALPNProtocols: ["http/1.1"] };
}
const TLS = tlsOptions(process.env);
// Loom's own CA, for an https gateway (the system's CAs are not asked: the gateway is ours).
const GATEWAY_CA = process.env.LOOM_TLS_CA_FILE ? readFileSync(process.env.LOOM_TLS_CA_FILE) : undefined;

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1).
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);

function hopless(headers) {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP.has(k.toLowerCase())));
}

// A new connection to the gateway per request, never a pooled idle one. Node's default agent
// keeps idle sockets for 5 s, uvicorn closes them after 5 s: a request sent on a socket the
// gateway was closing at that moment failed with ECONNRESET, a 502 the editor showed as
// "Not saved" (seen once in a fresh-clone run). A loopback connect costs far less than a retry.
const NO_POOL = { http: new http.Agent({ keepAlive: false }), https: new https.Agent({ keepAlive: false }) };

function proxy(req, res) {
  const [client, agent] = GATEWAY.protocol === "https:" ? [https, NO_POOL.https] : [http, NO_POOL.http];
  const headers = { ...hopless(req.headers), host: GATEWAY.host };
  headers["x-forwarded-for"] = req.socket.remoteAddress ?? "";
  headers["x-forwarded-host"] = req.headers.host ?? "";
  const upstream = client.request(
    { protocol: GATEWAY.protocol, hostname: GATEWAY.hostname, port: GATEWAY.port, method: req.method, path: req.url, headers, agent,
      ...(GATEWAY.protocol === "https:" && GATEWAY_CA ? { ca: GATEWAY_CA } : {}) },
    (up) => {
      const out = hopless(up.headers);
      // Tell any proxy in front of us not to buffer the stream either.
      if ((up.headers["content-type"] ?? "").startsWith("text/event-stream")) out["x-accel-buffering"] = "no";
      res.writeHead(up.statusCode ?? 502, out);
      res.flushHeaders();
      up.pipe(res);
    },
  );
  upstream.on("error", () => {
    if (res.headersSent) return res.destroy();
    res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: "bad_gateway", message: `the gateway at ${GATEWAY.origin} is unreachable`, status: 502 }));
  });
  // A browser that leaves (closes the SSE) cancels the gateway request, which cancels the run's stream.
  res.on("close", () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.pipe(upstream);
}

async function fileFor(urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  const full = path.resolve(DIST, "." + path.posix.normalize("/" + decoded));
  if (full !== DIST && !full.startsWith(DIST + path.sep)) return null; // no escaping dist/
  try {
    const info = await stat(full);
    return info.isFile() ? { full, size: info.size } : null;
  } catch {
    return null;
  }
}

async function serveStatic(req, res) {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "application/json" });
    return res.end(JSON.stringify({ code: "method_not_allowed", message: "the console serves GET only", status: 405 }));
  }
  const urlPath = new URL(req.url ?? "/", "http://x").pathname;
  let file = await fileFor(urlPath);
  const isAsset = urlPath.startsWith("/assets/");
  if (!file && isAsset) {
    res.writeHead(404, { "content-type": "text/plain" });
    return res.end("not found");
  }
  file ??= await fileFor("/index.html");
  if (!file) {
    res.writeHead(503, { "content-type": "text/plain" });
    return res.end(`the console is not built: run npm run build in ${here}`);
  }
  const ext = path.extname(file.full);
  res.writeHead(200, {
    "content-type": TYPES[ext] ?? "application/octet-stream",
    "content-length": file.size,
    // Vite names assets by content hash; index.html must be re-read to see a new build.
    "cache-control": isAsset ? "public, max-age=31536000, immutable" : "no-cache",
    "x-content-type-options": "nosniff",
  });
  if (req.method === "HEAD") return res.end();
  createReadStream(file.full).pipe(res);
}

function handle(req, res) {
  const url = req.url ?? "/";
  if (PROXIED.some((p) => url.startsWith(p) || url === p.replace(/\/$/, ""))) return proxy(req, res);
  // Probes, as the Python services have them: alive, and ready once there is a build to serve.
  if (url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end('{"status":"ok"}');
  }
  if (url === "/readyz") {
    fileFor("/index.html").then((file) => {
      res.writeHead(file ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify(file ? { status: "ready" } : { status: "not built", dist: DIST }));
    });
    return;
  }
  serveStatic(req, res).catch(() => {
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
}
const server = TLS ? https.createServer(TLS, handle) : http.createServer(handle);
// SSE streams live long: no request timeout for them (Node's default is 5 minutes).
server.requestTimeout = 0;
server.listen(PORT, HOST, () => {
  console.log(JSON.stringify({ event: "console listening", url: `${TLS ? "https" : "http"}://${HOST}:${PORT}`, gateway: GATEWAY.origin, dist: DIST }));
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.close(() => process.exit(0)));
