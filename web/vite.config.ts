// The bundle is committed inside the Python package (src/gochat/web) so `gochat serve` needs
// no Node.js; tests/browser/test_web_build.py rebuilds it and compares file hashes, so the
// output must be deterministic: content hashes in names, no timestamps, no source maps.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "../src/gochat/web",
    emptyOutDir: true,
    sourcemap: false,
    // Never inline assets as data: URIs or scripts; everything is a same-origin file (CSP).
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8000",
      "/ws": { target: "ws://127.0.0.1:8000", ws: true },
    },
  },
});
