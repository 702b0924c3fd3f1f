// Words the window shows for the agent's enums. Typed as total records, so a check or status
// added in tandem-proto fails the build here until it has a label. (The message catalogue
// for translations will replace these tables.)
import type { CheckId, Status } from "./api";

export const CHECK_TITLES: Record<CheckId, string> = {
  os_updates: "Operating system updates",
  mfa: "Multi-factor authentication",
  password_age: "Password age",
  password_manager: "Password manager",
  firewall: "Firewall",
  disk_encryption: "Disk encryption",
  screen_lock: "Screen lock",
  antivirus: "Antivirus",
  auto_updates: "Automatic updates",
  os_supported: "Supported OS version",
  software_sources: "Trusted software sources",
};

export const STATUS_LABELS: Record<Status, string> = {
  pass: "Done",
  warn: "Needs you",
  fail: "Action required",
  unknown: "Could not check",
  not_applicable: "Not applicable",
};

/** Relative time such as "3 minutes ago", in the window's language. */
export function ago(iso: string, now: Date = new Date()): string {
  const seconds = Math.round((Date.parse(iso) - now.getTime()) / 1000);
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const abs = Math.abs(seconds);
  if (abs < 60) return rtf.format(seconds, "second");
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(seconds / 3600), "hour");
  return rtf.format(Math.round(seconds / 86400), "day");
}
