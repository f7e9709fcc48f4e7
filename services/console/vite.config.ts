/// <reference types="vitest/config" />
// Vite builds the console into dist/. The editor (React Flow and every node panel) is its own
// chunk because the shell imports it with a dynamic import() (AppPage.tsx): it loads only when an
// app's editor tab opens, so the app list stays light. (No manualChunks: a manual vendor chunk
// pulled shared modules in and got preloaded by index.html.)
// `npm run dev` proxies the gateway (LOOM_GATEWAY_URL, default http://127.0.0.1:8080) as
// server.mjs does in production, so the browser only ever talks to one origin.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

const gateway = process.env.LOOM_GATEWAY_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    sourcemap: false,
  },
  server: {
    port: 3000,
    proxy: {
      "/console/api": { target: gateway, changeOrigin: false },
      "/v1": { target: gateway, changeOrigin: false },
    },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
  },
});
