//! Reminders: shows the nudge engine's decisions (`Agent::nudges`) as desktop notifications,
//! or, for an overdue item, opens the window on it; and hands the user's answer back to the
//! runtime. The runtime decides when and whether; this module only shows.
//!
//! # Platform behaviour
//! On Linux and the BSDs the notification carries actions: "Fix now" is the default action
//! (a click on the notification's body), "Later" appears only while the engine allows a
//! deferral, and the answer is awaited on a blocking thread. Elsewhere notify-rust shows the
//! notification without actions, and a click opens nothing; the tray and window still do.

use tandem_agent::nudge::Delivery;
use tandem_agent::{Agent, Nudge};
use tandem_proto::CheckId;
use tauri::{AppHandle, Manager};
use tokio::sync::broadcast::error::RecvError;

use crate::i18n::{Lang, Language};
use crate::window::{self, Page};

// Notification actions exist only where notify-rust offers them (the freedesktop spec);
// the answer mapping stays compiled and tested everywhere.
/// The default action's key in the notification spec: invoked by a click on the body.
#[cfg_attr(not(all(unix, not(target_os = "macos"))), allow(dead_code))]
const FIX_NOW: &str = "default";
#[cfg_attr(not(all(unix, not(target_os = "macos"))), allow(dead_code))]
const LATER: &str = "later";

/// What the user did with a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(all(unix, not(target_os = "macos"))), allow(dead_code))]
enum Answer {
    FixNow,
    Later,
    /// Closed, expired or answered with something we did not offer.
    Dismissed,
}

#[cfg_attr(not(all(unix, not(target_os = "macos"))), allow(dead_code))]
fn answer_of(action: &str) -> Answer {
    match action {
        FIX_NOW => Answer::FixNow,
        LATER => Answer::Later,
        _ => Answer::Dismissed,
    }
}

/// Follows the runtime's nudges until it stops.
pub fn start(app: &AppHandle) {
    let agent = app.state::<Agent>().inner().clone();
    let mut nudges = agent.nudges();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            match nudges.recv().await {
                Ok(nudge) => show(&app, &agent, nudge),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "reminders were decided faster than shown")
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

fn show(app: &AppHandle, agent: &Agent, nudge: Nudge) {
    let check = nudge.decision.check_id;
    tracing::info!(%check, phase = ?nudge.decision.phase, delivery = ?nudge.decision.delivery, "reminder");
    match nudge.decision.delivery {
        // Overdue: the window itself, on the item; opening it is the "acted" moment only
        // when the user presses the fix button there.
        Delivery::OpenWindow => window::open_or_log(app, Page::Item(check)),
        Delivery::Notification => {
            let (app, agent) = (app.clone(), agent.clone());
            let lang = app.state::<Language>().current();
            tauri::async_runtime::spawn(async move {
                let answer =
                    tauri::async_runtime::spawn_blocking(move || notify(&nudge, lang)).await;
                match answer {
                    Ok(Ok((answer, id))) => {
                        // Not every server closes a notification once answered (dunst keeps
                        // it after an action from its menu); "Later" means out of sight.
                        if answer == Answer::Later {
                            close(id).await;
                        }
                        answered(&app, &agent, check, answer).await
                    }
                    Ok(Err(err)) => {
                        tracing::warn!("cannot show the reminder as a notification: {err}");
                        // Without a notification service, the window is the reminder.
                        window::open_or_log(&app, Page::Item(check));
                    }
                    Err(err) => tracing::warn!("the reminder's thread failed: {err}"),
                }
            });
        }
    }
}

async fn answered(app: &AppHandle, agent: &Agent, check: CheckId, answer: Answer) {
    tracing::info!(%check, ?answer, "reminder answered");
    match answer {
        Answer::FixNow => {
            agent.acted(check).await;
            window::open_or_log(app, Page::Item(check));
        }
        Answer::Later => match agent.defer(check).await {
            Ok(until) => {
                let deferrals_left = agent
                    .state()
                    .items
                    .iter()
                    .find(|i| i.check_id == check)
                    .map_or(0, |i| i.deferrals_left);
                let minutes = (until - chrono::Utc::now()).num_minutes();
                tracing::info!(%check, %until, minutes, deferrals_left, "reminder deferred");
            }
            Err(err) => tracing::warn!("cannot defer {check}: {err}"),
        },
        Answer::Dismissed => {}
    }
}

fn notification(summary: &str, body: &str) -> notify_rust::Notification {
    let mut n = notify_rust::Notification::new();
    n.appname("Tandem")
        .summary(summary)
        .body(body)
        .icon("dialog-warning");
    n
}

/// The notification's title and body in `lang`. The runtime words its own (English) text
/// from the check's result; the title is re-worded here from the decision, and in other
/// languages the body says why the check matters, as the check's summary is English.
fn words(nudge: &Nudge, lang: Lang) -> (String, String) {
    let check = nudge.decision.check_id;
    let title = lang.check_title(check);
    let phase = match nudge.decision.phase {
        tandem_agent::nudge::Phase::Overdue => Some("phase.overdue"),
        tandem_agent::nudge::Phase::Imminent => Some("phase.imminent"),
        _ => None,
    };
    let title = match phase {
        Some(phase) => lang.fill(
            "notify.phaseTitle",
            &[("phase", &lang.t(phase)), ("title", &title)],
        ),
        None => title.to_owned(),
    };
    let body = match lang {
        Lang::En if !nudge.body.is_empty() => nudge.body.clone(),
        _ => lang.check_why(check).to_owned(),
    };
    (title, body)
}

/// Shows the notification and waits for the user's answer; answers with it and the
/// notification's id.
#[cfg(all(unix, not(target_os = "macos")))]
fn notify(nudge: &Nudge, lang: Lang) -> Result<(Answer, u32), notify_rust::error::Error> {
    let (title, body) = words(nudge, lang);
    let mut n = notification(&title, &body);
    n.action(FIX_NOW, lang.t("notify.fixNow"));
    if nudge.decision.can_defer {
        n.action(LATER, lang.t("notify.later"));
    }
    // Stays until answered: a reminder that times out unseen has not reminded anyone.
    n.timeout(notify_rust::Timeout::Never);
    let mut answer = Answer::Dismissed;
    let shown = n.show()?;
    let id = shown.id();
    shown.wait_for_action(|action| answer = answer_of(action));
    Ok((answer, id))
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn notify(nudge: &Nudge, lang: Lang) -> Result<(Answer, u32), notify_rust::error::Error> {
    let (title, body) = words(nudge, lang);
    notification(&title, &body).show()?;
    Ok((Answer::Dismissed, 0))
}

/// Takes an answered notification off the screen.
///
/// # Platform behaviour
/// Linux only (`CloseNotification` on the session bus); elsewhere nothing stays to close.
#[cfg(target_os = "linux")]
async fn close(id: u32) {
    let closed = async {
        let bus = zbus::Connection::session().await?;
        bus.call_method(
            Some("org.freedesktop.Notifications"),
            "/org/freedesktop/Notifications",
            Some("org.freedesktop.Notifications"),
            "CloseNotification",
            &(id,),
        )
        .await
        .map(|_| ())
    };
    if let Err(err) = closed.await {
        tracing::warn!("cannot close the answered reminder: {err}");
    }
}

#[cfg(not(target_os = "linux"))]
async fn close(_id: u32) {}

/// Says once that there is no tray and where Tandem is instead.
pub fn no_tray(app: &AppHandle) {
    let app = app.clone();
    let lang = app.state::<Language>().current();
    tauri::async_runtime::spawn(async move {
        let shown = tauri::async_runtime::spawn_blocking(move || {
            notification(lang.t("notify.noTray.title"), lang.t("notify.noTray.body"))
                .show()
                .map(|_| ())
        })
        .await;
        if !matches!(shown, Ok(Ok(()))) {
            tracing::warn!("no tray and no notification service: opening the window instead");
        }
        window::open_or_log(&app, Page::Home);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_action_is_fix_now() {
        assert_eq!(answer_of("default"), Answer::FixNow);
        assert_eq!(answer_of("later"), Answer::Later);
        assert_eq!(answer_of("__closed"), Answer::Dismissed);
    }
}
