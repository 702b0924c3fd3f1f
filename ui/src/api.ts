// The one door between the window and the Rust side: every Tauri command and event the
// frontend uses is wrapped here, typed with the declarations generated from tandem-proto.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { getCurrentWindow } from "@tauri-apps/api/window";

import type {
  AgentState,
  CheckId,
  HistoryEntry,
  PhishingReceipt,
  Policy,
  SentReport,
} from "./generated/agent";

export type {
  ActionItem,
  AgentState,
  CheckId,
  CheckResult,
  HistoryEntry,
  Phase,
  PhishingReceipt,
  Policy,
  SentReport,
  Status,
  TriageStatus,
  StatusReport,
  TrayState,
} from "./generated/agent";

/** The event the shell emits with the full agent state on every change. */
export const STATE_EVENT = "agent://state";

/** The event the shell sends to move the open window to a page (tray menu, reminders). */
export const NAVIGATE_EVENT = "ui://navigate";

/** A command failed; the message is the Rust error's display text. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    message: string,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (err: unknown) {
    // The shell serializes its errors as their message, so a rejection carries a string.
    const message = typeof err === "string" ? err : err instanceof Error ? err.message : String(err);
    throw new CommandError(command, message);
  }
}

declare global {
  interface Window {
    /** Put there by the shell when it creates the window (see src-tauri/src/window.rs). */
    __TANDEM_INITIAL_STATE__?: AgentState;
  }
}

/** The state the shell handed over with the page, for a first paint with content. */
export function initialState(): AgentState | null {
  return window.__TANDEM_INITIAL_STATE__ ?? null;
}

/** The agent's current state. */
export function getState(): Promise<AgentState> {
  return call<AgentState>("get_state");
}

/** Runs every check now (or only `checkId`'s) and resolves with the state after the run. */
export function checkNow(checkId?: CheckId): Promise<AgentState> {
  return call<AgentState>("check_now", { checkId: checkId ?? null });
}

/** Calls `handler` with every new state until the returned function is called. */
export function onState(handler: (state: AgentState) => void): Promise<UnlistenFn> {
  return listen<AgentState>(STATE_EVENT, (event) => handler(event.payload));
}

/** Calls `handler` with the route the shell asks for (`/item/os_updates`). */
export function onNavigate(handler: (route: string) => void): Promise<UnlistenFn> {
  return listen<{ route: string }>(NAVIGATE_EVENT, (event) => handler(event.payload.route));
}

/** The policy in force: IT's commitments, deferral limits, the organisation. */
export function getPolicy(): Promise<Policy> {
  return call<Policy>("get_policy");
}

/** "Later" on an item; resolves with when it comes back (RFC 3339). */
export function defer(checkId: CheckId): Promise<string> {
  return call<string>("defer", { checkId });
}

/** Pauses reminders for an hour; resolves with until when. */
export function pauseReminders(): Promise<string> {
  return call<string>("pause_reminders");
}

/** Opens the settings page or link that fixes the item (and tells the agent). */
export function openFix(checkId: CheckId): Promise<void> {
  return call<void>("open_fix", { checkId });
}

/** Opens a web link in the default browser. */
export function openLink(url: string): Promise<void> {
  return call<void>("open_link", { url });
}

/** Reports a suspicious link to IT. */
export function reportPhishingUrl(url: string, note: string | null): Promise<PhishingReceipt> {
  return call<PhishingReceipt>("report_phishing_url", { url, note });
}

/** Reports a saved message file: its bytes go as the raw body, name and note as headers. */
export async function reportPhishingMessage(file: File, note: string | null): Promise<PhishingReceipt> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const headers: Record<string, string> = { "tandem-file-name": encodeURIComponent(file.name) };
  if (note) headers["tandem-note"] = encodeURIComponent(note);
  try {
    return await invoke<PhishingReceipt>("report_phishing_message", bytes, { headers });
  } catch (err: unknown) {
    const message = typeof err === "string" ? err : err instanceof Error ? err.message : String(err);
    throw new CommandError("report_phishing_message", message);
  }
}

/** The phishing reports sent from this computer, newest first. */
export function phishingReports(): Promise<PhishingReceipt[]> {
  return call<PhishingReceipt[]>("phishing_reports");
}

/** Asks the server for IT's verdict and reply on each report sent; resolves with the list. */
export function refreshPhishingReports(): Promise<PhishingReceipt[]> {
  return call<PhishingReceipt[]>("refresh_phishing_reports");
}

/** The last report IT received, verbatim, or null. */
export function lastSentReport(): Promise<SentReport | null> {
  return call<SentReport | null>("last_sent_report");
}

/** What changed, newest first. */
export function history(): Promise<HistoryEntry[]> {
  return call<HistoryEntry[]>("history");
}

export function autostartEnabled(): Promise<boolean> {
  return call<boolean>("autostart_enabled");
}

export function setAutostart(enabled: boolean): Promise<boolean> {
  return call<boolean>("set_autostart", { enabled });
}

/** The page's own start, in ms since its navigation began: logged by the shell. */
export function reportPainted(times: {
  scriptStart: number;
  rendered: number;
  frame: number;
  firstUpdate: number | null;
  contentful: number | null;
  painted: number;
}): Promise<void> {
  return call<void>("window_painted", { times });
}

/** Tells the shell the user's language, so the tray menu and reminders speak it too. */
export function setLanguage(lang: string): Promise<void> {
  return call<void>("set_language", { lang });
}

/** Closes the window (the app stays in the tray; the shell destroys the webview after a grace). */
export function closeWindow(): Promise<void> {
  return getCurrentWindow().close();
}
