// The one door between the window and the Rust side: every Tauri command and event the
// frontend uses is wrapped here, typed with the declarations generated from tandem-proto.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

import type { AgentState } from "./generated/agent";

export type { AgentState, CheckId, CheckResult, Status, TrayState } from "./generated/agent";

/** The event the shell emits with the full agent state on every change. */
export const STATE_EVENT = "agent://state";

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

/** Runs every check now and resolves with the state after the run. */
export function checkNow(): Promise<AgentState> {
  return call<AgentState>("check_now");
}

/** Calls `handler` with every new state until the returned function is called. */
export function onState(handler: (state: AgentState) => void): Promise<UnlistenFn> {
  return listen<AgentState>(STATE_EVENT, (event) => handler(event.payload));
}
