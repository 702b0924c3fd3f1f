// What every page needs: the agent state, the words in the chosen language and navigation.
import { createContext } from "preact";
import { useContext } from "preact/hooks";

import type { AgentState, CheckId, Policy } from "./api";
import { Messages } from "./i18n";

export interface AppContext {
  state: AgentState | null;
  policy: Policy | null;
  m: Messages;
  /** Runs the checks; resolves when the run is over. */
  /** Runs every check, or only `checkId`'s ("Check again" on an item page). */
  checkNow: (checkId?: CheckId) => Promise<void>;
  busy: boolean;
}

export const Ctx = createContext<AppContext>({
  state: null,
  policy: null,
  m: new Messages("en"),
  checkNow: async () => {},
  busy: false,
});

export function useApp(): AppContext {
  return useContext(Ctx);
}
