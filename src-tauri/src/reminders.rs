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
            tauri::async_runtime::spawn(async move {
                let answer = tauri::async_runtime::spawn_blocking(move || notify(&nudge)).await;
                match answer {
                    Ok(Ok(answer)) => answered(&app, &agent, check, answer).await,
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
        Answer::Later => {
            if let Err(err) = agent.defer(check).await {
                tracing::warn!("cannot defer {check}: {err}");
            }
        }
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

/// Shows the notification and waits for the user's answer.
#[cfg(all(unix, not(target_os = "macos")))]
fn notify(nudge: &Nudge) -> Result<Answer, notify_rust::error::Error> {
    let mut n = notification(&nudge.title, &nudge.body);
    n.action(FIX_NOW, "Fix now");
    if nudge.decision.can_defer {
        n.action(LATER, "Later");
    }
    // Stays until answered: a reminder that times out unseen has not reminded anyone.
    n.timeout(notify_rust::Timeout::Never);
    let mut answer = Answer::Dismissed;
    n.show()?
        .wait_for_action(|action| answer = answer_of(action));
    Ok(answer)
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn notify(nudge: &Nudge) -> Result<Answer, notify_rust::error::Error> {
    notification(&nudge.title, &nudge.body).show()?;
    Ok(Answer::Dismissed)
}

/// Says once that there is no tray and where Tandem is instead.
pub fn no_tray(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shown = tauri::async_runtime::spawn_blocking(|| {
            notification(
                "Tandem has no tray icon here",
                "This desktop shows no tray icons (on GNOME, the AppIndicator extension adds them). \
                 Tandem keeps working: reminders come as notifications, and launching Tandem again \
                 opens its window.",
            )
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
