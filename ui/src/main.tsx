// Entry point: applies the saved theme before the first paint, then renders the window; the
// state arrives with the page (see src-tauri/src/window.rs). Once the first frame is on
// screen, the shell hears how long each step took (the time-to-first-paint breakdown).
import { render } from "preact";

import { reportPainted } from "./api";
import { App } from "./App";
import "./style.css";
import { applyTheme, initialTheme } from "./theme";

const scriptStart = performance.now();
applyTheme(initialTheme());
const root = document.getElementById("app");
if (root) {
  render(<App />, root);
  const rendered = performance.now();
  // The callback runs before the next frame is painted; a task queued from it runs after.
  requestAnimationFrame(() =>
    setTimeout(() => {
      void reportPainted({ scriptStart, rendered, painted: performance.now() }).catch(() => {});
    }, 0),
  );
}
