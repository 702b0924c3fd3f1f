// Entry point: renders the window as soon as the script runs; the state arrives right after.
import { render } from "preact";

import { App } from "./App";
import "./style.css";

const root = document.getElementById("app");
if (root) {
  render(<App />, root);
}
