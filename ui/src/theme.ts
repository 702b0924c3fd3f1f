// Light or dark: the system's choice unless the user picked one (Settings → Appearance).
export const THEMES = ["system", "light", "dark"] as const;
export type Theme = (typeof THEMES)[number];

const STORAGE_KEY = "tandem.theme";

export function initialTheme(): Theme {
  try {
    const saved = window.localStorage.getItem(STORAGE_KEY);
    if (saved === "light" || saved === "dark" || saved === "system") return saved;
  } catch {
    // No storage: follow the system.
  }
  return "system";
}

/** Applies the theme to the document (see `:root[data-theme]` in style.css) and keeps it. */
export function applyTheme(theme: Theme, save = false): void {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  if (save) {
    try {
      window.localStorage.setItem(STORAGE_KEY, theme);
    } catch {
      // Applies now; not remembered.
    }
  }
}
