//! The commands the window may call. They only forward to the agent runtime (and to the
//! platform opener and autostart plugins): the shell holds no check, policy or nudge logic.

use serde::{Serialize, Serializer};
use tandem_agent::phishing::{PhishingError, PhishingSubmission};
use tandem_agent::{Agent, AgentError};
use tandem_proto::activity::{HistoryEntry, PhishingReceipt, SentReport};
use tandem_proto::check::RemediationAction;
use tandem_proto::state::AgentState;
use tandem_proto::{CheckId, Policy};
use tauri::ipc::{InvokeBody, Request};
use tauri::{AppHandle, State};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_opener::OpenerExt as _;

/// A command's failure, sent to the frontend as its message.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Phishing(#[from] PhishingError),
    #[error("{0} has no settings page or link to open")]
    NoFix(CheckId),
    #[error("cannot open {target}: {reason}")]
    Open { target: String, reason: String },
    #[error("autostart: {0}")]
    Autostart(String),
    #[error("starting at login is managed by IT on this computer")]
    AutostartManaged,
    #[error("cannot keep the language: {0}")]
    Language(String),
    #[error("{0}")]
    BadRequest(String),
}

impl Serialize for CommandError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

type Answer<T> = Result<T, CommandError>;

/// The agent's current state.
#[tauri::command]
pub fn get_state(agent: State<'_, Agent>) -> AgentState {
    agent.state()
}

/// Runs every check now — or, from an item page's "Check again", only that item's check —
/// and answers with the state after the run.
#[tauri::command]
pub async fn check_now(agent: State<'_, Agent>, check_id: Option<CheckId>) -> Answer<AgentState> {
    Ok(match check_id {
        Some(id) => agent.check_items(&[id]).await?,
        None => agent.check_now().await?,
    })
}

/// The policy in force (IT's commitments, deferral limits, the organisation's name).
#[tauri::command]
pub async fn get_policy(agent: State<'_, Agent>) -> Answer<Policy> {
    Ok(agent.effective_policy().await?.0)
}

/// "Later" from the item page; answers with when the item comes back.
#[tauri::command]
pub async fn defer(agent: State<'_, Agent>, check_id: CheckId) -> Answer<String> {
    Ok(agent.defer(check_id).await?.to_rfc3339())
}

/// Pauses reminders for an hour; answers with until when.
#[tauri::command]
pub async fn pause_reminders(agent: State<'_, Agent>) -> Answer<String> {
    Ok(agent
        .pause_reminders(crate::tray::PAUSE_FOR)
        .await?
        .to_rfc3339())
}

/// Opens the settings page or link that fixes `check_id`, and tells the runtime the user
/// acted on it (which also checks again soon, so a fixed item turns green).
///
/// # Platform behaviour
/// Settings targets that are URIs (`ms-settings:`, `x-apple.systempreferences:`,
/// `windowsdefender://`) go through the platform opener; on Linux a target is a settings
/// program and its arguments (`gnome-software --mode=updates`), started directly.
#[tauri::command]
pub async fn open_fix(app: AppHandle, agent: State<'_, Agent>, check_id: CheckId) -> Answer<()> {
    let action = agent
        .state()
        .results
        .into_iter()
        .find(|r| r.id == check_id)
        .and_then(|r| r.remediation.action)
        .ok_or(CommandError::NoFix(check_id))?;
    let failed = |target: &str, reason: String| CommandError::Open {
        target: target.to_owned(),
        reason,
    };
    match &action {
        RemediationAction::OpenUrl { url } => app
            .opener()
            .open_url(url, None::<&str>)
            .map_err(|e| failed(url, e.to_string()))?,
        RemediationAction::OpenSettings { target }
            if !target.contains(char::is_whitespace) && target.contains(':') =>
        {
            app.opener()
                .open_url(target, None::<&str>)
                .map_err(|e| failed(target, e.to_string()))?
        }
        RemediationAction::OpenSettings { target } => {
            spawn_program(target).map_err(|e| failed(target, e.to_string()))?
        }
        RemediationAction::RunAllowedFix { .. } => return Err(CommandError::NoFix(check_id)),
    }
    agent.acted(check_id).await;
    Ok(())
}

/// Starts a settings program given as one string of words, and reaps it in the background.
fn spawn_program(command_line: &str) -> std::io::Result<()> {
    let mut words = command_line.split_whitespace();
    let program = words.next().ok_or(std::io::ErrorKind::InvalidInput)?;
    let mut child = std::process::Command::new(program)
        .args(words)
        .stdin(std::process::Stdio::null())
        .spawn()?;
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// Opens a link (the helpdesk, an enrolment page) in the default browser. Only web links.
#[tauri::command]
pub fn open_link(app: AppHandle, url: String) -> Answer<()> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(CommandError::BadRequest(format!("not a web link: {url}")));
    }
    app.opener()
        .open_url(&url, None::<&str>)
        .map_err(|e| CommandError::Open {
            target: url.clone(),
            reason: e.to_string(),
        })
}

/// Reports a suspicious link.
#[tauri::command]
pub async fn report_phishing_url(
    agent: State<'_, Agent>,
    url: String,
    note: Option<String>,
) -> Answer<PhishingReceipt> {
    Ok(agent
        .report_phishing(PhishingSubmission::Url { url, note })
        .await?)
}

/// Reports a suspicious message file. The file's bytes are the raw request body (no JSON
/// round trip for up to 10 MB); its name and the note ride in percent-encoded headers.
#[tauri::command]
pub async fn report_phishing_message(
    agent: State<'_, Agent>,
    request: Request<'_>,
) -> Answer<PhishingReceipt> {
    let InvokeBody::Raw(bytes) = request.body() else {
        return Err(CommandError::BadRequest(
            "the message must be sent as raw bytes".into(),
        ));
    };
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(percent_decode)
    };
    let file_name = header("tandem-file-name").unwrap_or_else(|| "message.eml".into());
    let note = header("tandem-note");
    Ok(agent
        .report_phishing(PhishingSubmission::Message {
            file_name,
            bytes: bytes.clone(),
            note,
        })
        .await?)
}

/// Undoes `encodeURIComponent`; a malformed escape is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The phishing reports sent from this device, newest first.
#[tauri::command]
pub async fn phishing_reports(agent: State<'_, Agent>) -> Answer<Vec<PhishingReceipt>> {
    Ok(agent.phishing_reports().await?)
}

/// The phishing reports sent from this device with IT's verdict and reply, asked of the
/// server now (the window asks when it opens the page and on "Check for replies").
#[tauri::command]
pub async fn refresh_phishing_reports(agent: State<'_, Agent>) -> Answer<Vec<PhishingReceipt>> {
    Ok(agent.refresh_phishing_reports().await?)
}

/// "What IT can see": the last report the server acknowledged, verbatim.
#[tauri::command]
pub async fn last_sent_report(agent: State<'_, Agent>) -> Answer<Option<SentReport>> {
    Ok(agent.last_sent_report().await?)
}

/// What changed, newest first.
#[tauri::command]
pub async fn history(agent: State<'_, Agent>) -> Answer<Vec<HistoryEntry>> {
    Ok(agent.history(200).await?)
}

/// Whether Tandem starts at login.
#[tauri::command]
pub fn autostart_enabled(app: AppHandle) -> Answer<bool> {
    app.autolaunch()
        .is_enabled()
        .map_err(|e| CommandError::Autostart(e.to_string()))
}

/// Turns starting at login on or off; answers with the new setting. Refused when the
/// policy in force leaves this to IT (`desktop.allow_autostart_toggle`).
#[tauri::command]
pub async fn set_autostart(app: AppHandle, agent: State<'_, Agent>, enabled: bool) -> Answer<bool> {
    let (policy, _) = agent.effective_policy().await?;
    if !policy.desktop.allow_autostart_toggle {
        return Err(CommandError::AutostartManaged);
    }
    let launcher = app.autolaunch();
    let done = if enabled {
        launcher.enable()
    } else {
        launcher.disable()
    };
    done.map_err(|e| CommandError::Autostart(e.to_string()))?;
    launcher
        .is_enabled()
        .map_err(|e| CommandError::Autostart(e.to_string()))
}

/// The user chose a language in Settings: kept for the shell, whose tray menu and
/// notifications switch to it at once.
#[tauri::command]
pub fn set_language(language: State<'_, crate::i18n::Language>, lang: String) -> Answer<()> {
    let lang = crate::i18n::Lang::from_code(&lang)
        .ok_or_else(|| CommandError::BadRequest(format!("not a language Tandem speaks: {lang}")))?;
    language
        .choose(lang)
        .map_err(|e| CommandError::Language(e.to_string()))
}

/// The window's first frame, with its own timings: logged as the breakdown of the time to
/// first paint (`cargo xtask bench desktop-idle` prints it).
#[tauri::command]
pub fn window_painted(times: crate::window::PaintTimes) {
    crate::window::painted(times);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_undoes_encode_uri_component() {
        assert_eq!(percent_decode("caf%C3%A9%20%22x%22.eml"), "café \"x\".eml");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
