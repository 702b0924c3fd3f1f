// Tandem console: the only script the pages load (same origin, no inline script under the
// Content-Security-Policy). It adds conveniences only; every page works without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Confirmation for destructive forms (revoke, expire, disable).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.getAttribute("data-confirm") || "Are you sure?")) {
        event.preventDefault();
      }
    });
  }

  // Copy buttons next to secrets and install commands.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const target = document.getElementById(button.getAttribute("data-copy") || "");
      if (!target) return;
      try {
        await navigator.clipboard.writeText(target.textContent || "");
        button.textContent = "Copied";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(target);
        const selection = window.getSelection();
        selection?.removeAllRanges();
        selection?.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }

  // Form / raw JSON tabs on the policy page. Without script both panels simply show.
  const tabs = document.querySelector("[data-tabs]");
  if (tabs) {
    const show = (name) => {
      for (const tab of tabs.querySelectorAll("[data-tab]")) {
        const current = tab.getAttribute("data-tab") === name;
        tab.classList.toggle("current", current);
        const panel = document.getElementById(tab.getAttribute("data-tab") || "");
        if (panel) panel.hidden = !current;
      }
    };
    for (const tab of tabs.querySelectorAll("[data-tab]")) {
      tab.addEventListener("click", (event) => {
        event.preventDefault();
        show(tab.getAttribute("data-tab"));
      });
    }
    show(window.location.hash === "#raw" ? "raw" : "form");
  }
});
