// Entry point: applies the saved theme before the first paint, then renders the window; the
// state arrives with the page (see src-tauri/src/window.rs).
import { render } from "preact";

import { App } from "./App";
import "./style.css";
import { applyTheme, initialTheme } from "./theme";

applyTheme(initialTheme());
const root = document.getElementById("app");
if (root) {
  render(<App />, root);
}
