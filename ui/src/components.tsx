// Small pieces shared by the pages: status badges, the tray shield, page headings.
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

import type { Status, TrayState } from "./api";
import { useApp } from "./context";

import okOnLight from "../../icons/src/tray/ok-on-light.svg";
import okOnDark from "../../icons/src/tray/ok-on-dark.svg";
import attentionOnLight from "../../icons/src/tray/attention-on-light.svg";
import attentionOnDark from "../../icons/src/tray/attention-on-dark.svg";
import urgentOnLight from "../../icons/src/tray/urgent-on-light.svg";
import urgentOnDark from "../../icons/src/tray/urgent-on-dark.svg";
import offlineOnLight from "../../icons/src/tray/offline-on-light.svg";
import offlineOnDark from "../../icons/src/tray/offline-on-dark.svg";

const SHIELDS: Record<TrayState, { light: string; dark: string }> = {
  ok: { light: okOnLight, dark: okOnDark },
  attention: { light: attentionOnLight, dark: attentionOnDark },
  urgent: { light: urgentOnLight, dark: urgentOnDark },
  offline: { light: offlineOnLight, dark: offlineOnDark },
};

/** The tray's icon, so the window shows the shield the user just clicked. */
export function Shield({ tone, size = 40 }: { tone: TrayState; size?: number }) {
  const shield = SHIELDS[tone];
  return (
    <span class="shield">
      <img class="shield-light" src={shield.light} width={size} height={size} alt="" />
      <img class="shield-dark" src={shield.dark} width={size} height={size} alt="" />
    </span>
  );
}

// Each status has its own shape, so colour is never the only cue.
const GLYPHS: Record<Status, string> = {
  pass: "M4 8.2 L7 11 L12 5",
  warn: "M8 3.5 V9 M8 12 V12.2",
  fail: "M4.5 4.5 L11.5 11.5 M11.5 4.5 L4.5 11.5",
  unknown: "M6 6 C6 3.5 10.5 3.5 10.5 6 C10.5 7.8 8 7.8 8 9.6 M8 12.2 V12.4",
  not_applicable: "M4 8 H12",
};

export function StatusBadge({ status }: { status: Status }) {
  const { m } = useApp();
  return (
    <span class="badge" data-status={status}>
      <svg class="badge-glyph" viewBox="0 0 16 16" aria-hidden="true" focusable="false">
        <path d={GLYPHS[status]} />
      </svg>
      <span>{m.status(status)}</span>
    </span>
  );
}

/** A page's title; focused when the page opens so screen readers announce the new page. */
export function PageTitle({ children, id = "page-title" }: { children: ComponentChildren; id?: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    ref.current?.focus({ preventScroll: true });
  }, []);
  return (
    <h1 class="page-title" id={id} tabIndex={-1} ref={ref}>
      {children}
    </h1>
  );
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
