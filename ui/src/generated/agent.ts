// Generated from crates/proto by `cargo test -p tandem-proto --features ts`.
// Do not edit by hand: run it with TANDEM_BLESS=1 to regenerate.

export type CheckId = "os_updates" | "mfa" | "password_age" | "password_manager" | "firewall" | "disk_encryption" | "screen_lock" | "antivirus" | "auto_updates" | "os_supported" | "software_sources";

export type Status = "pass" | "warn" | "fail" | "unknown" | "not_applicable";

export type Owner = "user" | "it";

export type RemediationAction = { "kind": "open_settings", target: string, } | { "kind": "open_url", url: string, } | { "kind": "run_allowed_fix", fix: string, };

export type Remediation = { steps: Array<string>, action?: RemediationAction | null, };

export type Evidence = { 
/**
 * What was read: a command line, a file path or a D-Bus call.
 */
source: string, 
/**
 * A short excerpt of what came back.
 */
excerpt: string, };

export type CheckResult = { id: CheckId, status: Status, 
/**
 * One sentence for people.
 */
summary: string, 
/**
 * Why the status is `unknown`: the probe could not tell, and this says why.
 */
reason?: string | null, 
/**
 * Typed per check; an object whose shape each check documents.
 */
details: Record<string, unknown>, evidence: Array<Evidence>, remediation: Remediation, owner: Owner, observed_at: string, duration_ms: number, };

export type TrayState = "ok" | "attention" | "urgent" | "offline";

export type Enrollment = { server_url: string, device_id: string, enrolled_at: string, };

export type PolicySource = "built_in" | "server" | "managed";

export type PolicyState = { 
/**
 * The highest-precedence source that set anything.
 */
source: PolicySource, 
/**
 * The server's version number of the policy in force, when it came from a server.
 */
version: number | null, group: string | null, etag: string | null, received_at: string | null, 
/**
 * Where each setting came from, by JSON pointer (`/checks/os_updates/grace_days`).
 */
origins: { [key in string]: PolicySource }, 
/**
 * The locally managed policy (MDM-deployed file, managed preferences or registry), when
 * one is present.
 */
managed_path: string | null, 
/**
 * Why the managed policy could not be used, when it could not.
 */
managed_error: string | null, 
/**
 * Why the last server policy was rejected, when it was (the previous one stays).
 */
rejected: string | null, };

export type Phase = "notice" | "reminder" | "imminent" | "overdue";

export type ActionItem = { check_id: CheckId, phase: Phase, first_seen: string, deadline: string, 
/**
 * How many more times "Later" may be chosen (0 once the deadline has passed).
 */
deferrals_left: number, deferred_until: string | null, };

export type AgentState = { agent_version: string, 
/**
 * The tray icon's state, kept in step with the rest by [`AgentState::refresh_tray`] so
 * every face shows the same thing without repeating the rule.
 */
tray: TrayState, enrollment: Enrollment | null, policy: PolicyState, results: Array<CheckResult>, last_check_at: string | null, last_sync_at: string | null, 
/**
 * The last sync error, in words, cleared by the next success.
 */
last_sync_error: string | null, outbox_len: number, 
/**
 * True while a check run is in progress.
 */
checking: boolean, 
/**
 * The user's open items, most urgent first.
 */
items: Array<ActionItem>, 
/**
 * Reminders are paused until then ("Pause reminders for 1 hour").
 */
paused_until: string | null, };

export type DeviceInfo = { 
/**
 * An app-specific hash of the OS machine id: stable per machine, useless elsewhere.
 */
machine_id: string, hostname: string, 
/**
 * `linux`, `macos` or `windows`.
 */
os: string, os_version: string, model?: string | null, serial?: string | null, };

export type UserInfo = { login: string, email?: string | null, };

export type Inventory = { kernel?: string | null, arch?: string | null, user?: UserInfo | null, 
/**
 * Anything else the agent knows (CPU, memory, disks, uptime); free-form and optional.
 */
extra?: Record<string, unknown>, 
/**
 * An app-specific hash of the OS machine id: stable per machine, useless elsewhere.
 */
machine_id: string, hostname: string, 
/**
 * `linux`, `macos` or `windows`.
 */
os: string, os_version: string, model?: string | null, serial?: string | null, };

export type EventKind = "nudge_shown" | "nudge_deferred" | "nudge_acted" | "status_changed" | "policy_applied" | "policy_rejected" | "update_applied" | "update_refused";

export type Event = { kind: EventKind, at: string, check_id?: CheckId | null, detail?: string | null, };

export type StatusReport = { 
/**
 * UUIDv7; the idempotency key.
 */
report_id: string, agent_version: string, sent_at: string, inventory: Inventory, results: Array<CheckResult>, events: Array<Event>, 
/**
 * The etag of the server policy the agent has applied, so IT sees what is in force.
 */
policy_etag?: string | null, };

export type PhishingAck = { tracking_id: string, received_at: string, };

export type TriageStatus = "new" | "investigating" | "phishing" | "spam" | "safe" | "unknown";

export type PhishingReportStatus = { tracking_id: string, received_at: string, status: TriageStatus, 
/**
 * What IT tells the reporter (plain text, never markup).
 */
reply?: string | null, 
/**
 * When IT last changed the status or the reply; `None` while untouched.
 */
updated_at?: string | null, };

export type PhishingSubject = { "kind": "url", url: string, } | { "kind": "message", file_name: string, bytes: number, };

export type PhishingReceipt = { tracking_id: string, 
/**
 * When the server received it (the server's clock).
 */
received_at: string, subject: PhishingSubject, note: string | null, 
/**
 * IT's triage as last fetched from the server; `None` until it was first asked.
 */
status: TriageStatus | null, 
/**
 * IT's reply to the reporter, plain text.
 */
reply: string | null, 
/**
 * When IT last changed the status or the reply.
 */
updated_at: string | null, };

export type SentReport = { 
/**
 * When the server acknowledged it.
 */
acknowledged_at: string, 
/**
 * The JSON body, byte for byte as it went over the wire.
 */
body: string, };

export type HistoryEntry = { "kind": "status", at: string, check_id: CheckId, from: Status | null, to: Status, summary: string, } | { "kind": "phishing", at: string, tracking_id: string, };

export type Policy = { org: Org, checks: Checks, nudges: Nudges, it_commitments: Array<ItCommitment>, intervals: Intervals, desktop: Desktop, };

export type Org = { name: string, helpdesk_url: string | null, phishing_contact: string | null, };

export type ItCommitment = { title: string, by: string, detail: string, };

export type Checks = { os_updates: OsUpdatesPolicy, mfa: MfaPolicy, password_age: PasswordAgePolicy, password_manager: PasswordManagerPolicy, firewall: Common, disk_encryption: Common, screen_lock: ScreenLockPolicy, antivirus: AntivirusPolicy, auto_updates: Common, os_supported: OsSupportedPolicy, software_sources: Common, };

export type Severity = "low" | "medium" | "high" | "critical";

export type Common = { enabled: boolean, severity: Severity, 
/**
 * Whose part it is; `None` means the check's own default.
 */
owner: Owner | null, 
/**
 * Days from first seen to the deadline.
 */
grace_days: number, 
/**
 * A fixed deadline set by IT; overrides `grace_days` when earlier.
 */
deadline: string | null, };

export type OsUpdatesPolicy = { security_grace_days: number, enabled: boolean, severity: Severity, 
/**
 * Whose part it is; `None` means the check's own default.
 */
owner: Owner | null, 
/**
 * Days from first seen to the deadline.
 */
grace_days: number, 
/**
 * A fixed deadline set by IT; overrides `grace_days` when earlier.
 */
deadline: string | null, };

export type MfaPolicy = { enroll_url: string | null, enabled: boolean, severity: Severity, 
/**
 * Whose part it is; `None` means the check's own default.
 */
owner: Owner | null, 
/**
 * Days from first seen to the deadline.
 */
grace_days: number, 
/**
 * A fixed deadline set by IT; overrides `grace_days` when earlier.
 */
deadline: string | null, };

export type PasswordSource = "idp_then_local" | "local" | "idp";

export type PasswordAgePolicy = { max_age_days: number, source: PasswordSource, enabled: boolean, severity: Severity, 
/**
 * Whose part it is; `None` means the check's own default.
 */
owner: Owner | null, 
/**
 * Days from first seen to the deadline.
 */
grace_days: number, 
/**
 * A fixed deadline set by IT; overrides `grace_days` when earlier.
 */
deadline: string | null, };

export type PasswordManagerPolicy = { recognised: Array<string>, enabled: boolean, severity: Severity, 
/**
 * Whose part it is; `None` means the check's own default.
 */
owner: Owner | null, 
/**
 * Days from first seen to the deadline.
 */
grace_days: number, 
/**
 * A fixed deadline set by IT; overrides `grace_days` when earlier.
 */
deadline: string | null, };

export type ScreenLockPolicy = { max_idle_minutes: number, enabled: boolean, severity: Severity, 
/**
 * Whose part it is; `None` means the check's own default.
 */
owner: Owner | null, 
/**
 * Days from first seen to the deadline.
 */
grace_days: number, 
/**
 * A fixed deadline set by IT; overrides `grace_days` when earlier.
 */
deadline: string | null, };

export type AntivirusPolicy = { max_definitions_age_days: number, enabled: boolean, severity: Severity, 
/**
 * Whose part it is; `None` means the check's own default.
 */
owner: Owner | null, 
/**
 * Days from first seen to the deadline.
 */
grace_days: number, 
/**
 * A fixed deadline set by IT; overrides `grace_days` when earlier.
 */
deadline: string | null, };

export type OsSupportedPolicy = { minimum: { [key in string]: string }, enabled: boolean, severity: Severity, 
/**
 * Whose part it is; `None` means the check's own default.
 */
owner: Owner | null, 
/**
 * Days from first seen to the deadline.
 */
grace_days: number, 
/**
 * A fixed deadline set by IT; overrides `grace_days` when earlier.
 */
deadline: string | null, };

export type Nudges = { working_hours: WorkingHours, max_per_day: number, respect_do_not_disturb: boolean, deferrals: Deferrals, escalation: Escalation, };

export type WorkingHours = { start: string, end: string, days: Array<Weekday>, };

export type Weekday = "mon" | "tue" | "wed" | "thu" | "fri" | "sat" | "sun";

export type Deferrals = { max_count: number, max_hours: number, };

export type Escalation = { reminder_every_hours: number, imminent_within_hours: number, imminent_every_hours: number, overdue_every_hours: number, };

export type Intervals = { check_minutes: number, report_minutes: number, };

export type Desktop = { 
/**
 * Whether the user may turn "start at login" on or off. IT that installs the autostart
 * entry itself (or wants Tandem always running) sets this to `false`; the window then
 * shows the setting as managed and the shell refuses to change it.
 */
allow_autostart_toggle: boolean, };

