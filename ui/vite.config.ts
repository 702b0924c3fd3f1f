// Vite builds the window frontend into ui/dist, which tauri.conf.json's
// build.frontendDist embeds into the tandem-desktop binary.
import { defineConfig } from "vite";

export default defineConfig({
  // Tauri serves the files from its own asset protocol: relative URLs keep them working.
  base: "./",
  // Preact through the automatic JSX runtime; no framework plugin is needed.
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // WebKitGTK 2.40+ (Debian 12), WebView2 and Safari 15+ all run ES2021.
    target: "es2021",
    // One small script and one stylesheet: inlining the tiny ones saves requests before first paint.
    assetsInlineLimit: 4096,
    modulePreload: false,
    sourcemap: false,
    reportCompressedSize: false,
  },
});
