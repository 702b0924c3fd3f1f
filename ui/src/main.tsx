// Entry point: applies the saved theme before the first paint, then renders the window; the
// state arrives with the page (see src-tauri/src/window.rs). Once the first frame is on
// screen, the shell hears how long each step took (the time-to-first-paint breakdown).
import { render } from "preact";

import { reportPainted } from "./api";
import { App } from "./App";
import "./style.css";
import { applyTheme, initialTheme } from "./theme";

declare global {
  interface Window {
    /** The shell's operating system (`std::env::consts::OS`), set by src-tauri/src/window.rs. */
    __TANDEM_OS__?: string;
  }
}

const scriptStart = performance.now();
// Before anything is laid out: the stylesheet picks fonts per platform (see style.css).
document.documentElement.dataset.os = window.__TANDEM_OS__ ?? "";
// When WebKit's first rendering update after the bundle started began, whatever it painted.
let firstUpdate: number | null = null;
requestAnimationFrame(() => {
  firstUpdate = performance.now();
});
applyTheme(initialTheme());
const root = document.getElementById("app");
if (root) {
  render(<App />, root);
  const rendered = performance.now();
  // The callback runs before the next frame is painted; a task queued from it runs after.
  requestAnimationFrame(() => {
    const frame = performance.now();
    setTimeout(() => {
      // WebKit's own mark of its first paint with content, where it supports paint timing.
      const contentful = performance
        .getEntriesByType("paint")
        .find((e) => e.name === "first-contentful-paint")?.startTime;
      void reportPainted({
        scriptStart,
        rendered,
        frame,
        firstUpdate,
        contentful: contentful ?? null,
        painted: performance.now(),
      }).catch(() => {});
    }, 0);
  });
}
