// Hash routes: `#/`, `#/item/<check>`, `#/phishing`, `#/it-can-see`, `#/history`,
// `#/settings`. The shell opens the window on a route and moves an open window with the
// `ui://navigate` event (see src-tauri/src/window.rs).
import { useEffect, useState } from "preact/hooks";

import type { CheckId } from "./api";

export type Route =
  | { page: "home" }
  | { page: "item"; check: CheckId }
  | { page: "phishing" }
  | { page: "it-can-see" }
  | { page: "history" }
  | { page: "settings" };

const CHECK_IDS: readonly CheckId[] = [
  "os_updates",
  "mfa",
  "password_age",
  "password_manager",
  "firewall",
  "disk_encryption",
  "screen_lock",
  "antivirus",
  "auto_updates",
  "os_supported",
  "software_sources",
];

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "") || "/";
  const item = /^\/item\/([a-z_]+)$/.exec(path);
  if (item) {
    const check = CHECK_IDS.find((id) => id === item[1]);
    if (check) return { page: "item", check };
  }
  switch (path) {
    case "/phishing":
      return { page: "phishing" };
    case "/it-can-see":
      return { page: "it-can-see" };
    case "/history":
      return { page: "history" };
    case "/settings":
      return { page: "settings" };
    default:
      return { page: "home" };
  }
}

export function href(route: Route): string {
  return route.page === "item" ? `#/item/${route.check}` : route.page === "home" ? "#/" : `#/${route.page}`;
}

export function navigate(path: string): void {
  window.location.hash = path.startsWith("#") ? path : `#${path}`;
}

export function useRoute(): Route {
  const [route, setRoute] = useState<Route>(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
