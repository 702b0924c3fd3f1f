//! What the agent runtime shows to its faces (the desktop shell, `tandem status`).
//!
//! Not a wire type between machines, but a contract between processes and languages: the
//! desktop frontend's TypeScript declarations are generated from these types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::check::{worst_status, CheckResult, Status};

/// The tray icon's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum TrayState {
    /// Nothing needs the user.
    Ok,
    /// Something is due or could not be checked.
    Attention,
    /// Something fails.
    Urgent,
    /// Not enrolled, or the server has not been reached recently.
    #[default]
    Offline,
}

impl TrayState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrayState::Ok => "ok",
            TrayState::Attention => "attention",
            TrayState::Urgent => "urgent",
            TrayState::Offline => "offline",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Enrollment {
    pub server_url: String,
    pub device_id: Uuid,
    pub enrolled_at: DateTime<Utc>,
}

/// Where the policy in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, PartialOrd, Ord)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    #[default]
    BuiltIn,
    Server,
    Managed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PolicyState {
    /// The highest-precedence source that set anything.
    pub source: PolicySource,
    /// The server's version number of the policy in force, when it came from a server.
    pub version: Option<i64>,
    pub group: Option<String>,
    pub etag: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
    /// Where each setting came from, by JSON pointer (`/checks/os_updates/grace_days`).
    #[serde(default)]
    pub origins: std::collections::BTreeMap<String, PolicySource>,
    /// The locally managed policy (MDM-deployed file, managed preferences or registry), when
    /// one is present.
    #[serde(default)]
    pub managed_path: Option<String>,
    /// Why the managed policy could not be used, when it could not.
    #[serde(default)]
    pub managed_error: Option<String>,
    /// Why the last server policy was rejected, when it was (the previous one stays).
    #[serde(default)]
    pub rejected: Option<String>,
}

/// How close an item is to its deadline (DESIGN.md, "Nudges").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Newly found: the tray colour only.
    Notice,
    Reminder,
    Imminent,
    Overdue,
}

/// Something that is the user's to do, with its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ActionItem {
    pub check_id: crate::CheckId,
    pub phase: Phase,
    pub first_seen: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// How many more times "Later" may be chosen (0 once the deadline has passed).
    pub deferrals_left: u32,
    #[serde(default)]
    pub deferred_until: Option<DateTime<Utc>>,
}

/// A snapshot of everything the agent knows, sent to the UI on every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AgentState {
    pub agent_version: String,
    /// The tray icon's state, kept in step with the rest by [`AgentState::refresh_tray`] so
    /// every face shows the same thing without repeating the rule.
    pub tray: TrayState,
    pub enrollment: Option<Enrollment>,
    pub policy: PolicyState,
    pub results: Vec<CheckResult>,
    pub last_check_at: Option<DateTime<Utc>>,
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The last sync error, in words, cleared by the next success.
    pub last_sync_error: Option<String>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub outbox_len: u64,
    /// True while a check run is in progress.
    pub checking: bool,
    /// The user's open items, most urgent first.
    #[serde(default)]
    pub items: Vec<ActionItem>,
    /// Reminders are paused until then ("Pause reminders for 1 hour").
    #[serde(default)]
    pub paused_until: Option<DateTime<Utc>>,
}

impl AgentState {
    /// Recomputes [`AgentState::tray`] after a change.
    pub fn refresh_tray(&mut self) {
        self.tray = self.tray_state();
    }

    /// The tray state that follows from the results and the connection.
    pub fn tray_state(&self) -> TrayState {
        if self.enrollment.is_none()
            || self.last_sync_error.is_some() && self.last_sync_at.is_none()
        {
            return TrayState::Offline;
        }
        if self.items.iter().any(|i| i.phase >= Phase::Imminent) {
            return TrayState::Urgent;
        }
        match worst_status(&self.results) {
            Some(Status::Fail) => TrayState::Urgent,
            Some(Status::Warn) | Some(Status::Unknown) => TrayState::Attention,
            _ => TrayState::Ok,
        }
    }

    /// Results that ask something of the user, worst first.
    pub fn needing_action(&self) -> Vec<&CheckResult> {
        let mut items: Vec<_> = self
            .results
            .iter()
            .filter(|r| matches!(r.status, Status::Fail | Status::Warn))
            .collect();
        items.sort_by_key(|r| std::cmp::Reverse(r.status.rank()));
        items
    }
}
