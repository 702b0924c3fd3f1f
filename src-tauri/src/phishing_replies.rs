//! IT's answers to the user's phishing reports (`Agent::phishing_replies`), shown once each as
//! a desktop notification whose default action opens the window's phishing page. The runtime
//! decides what is new; this module only shows it.
//!
//! # Platform behaviour
//! On Linux and the BSDs a click on the notification's body opens the phishing page (the
//! freedesktop default action). Elsewhere notify-rust shows it without actions; the page
//! still lists the reply.

use tandem_agent::phishing::PhishingReply;
use tandem_agent::Agent;
use tandem_proto::v1::TriageStatus;
use tauri::{AppHandle, Manager};
use tokio::sync::broadcast::error::RecvError;

use crate::i18n::{Lang, Language};
use crate::window::{self, Page};

/// Follows the runtime's phishing replies until it stops.
pub fn start(app: &AppHandle) {
    let mut replies = app.state::<Agent>().inner().phishing_replies();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            match replies.recv().await {
                Ok(reply) => show(&app, reply),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "phishing replies arrived faster than shown")
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

fn show(app: &AppHandle, reply: PhishingReply) {
    let app = app.clone();
    let lang = app.state::<Language>().current();
    tauri::async_runtime::spawn(async move {
        let (title, body) = words(&reply, lang);
        let shown = tauri::async_runtime::spawn_blocking(move || notify(&title, &body)).await;
        match shown {
            Ok(Ok(true)) => window::open_or_log(&app, Page::Phishing),
            Ok(Ok(false)) => {}
            // No notification service: the page keeps the reply until the user looks.
            Ok(Err(err)) => tracing::warn!("cannot show IT's phishing reply: {err}"),
            Err(err) => tracing::warn!("the phishing reply's thread failed: {err}"),
        }
    });
}

/// The notification's title and body: the verdict in `lang`, then IT's own words as text.
/// Notification servers with the spec's `body-markup` capability (dunst, GNOME) read the
/// body as markup, so `&`, `<` and `>` are escaped: a reply reads as typed, never as markup.
fn words(reply: &PhishingReply, lang: Lang) -> (String, String) {
    let (title, verdicts) = match lang {
        Lang::De => (
            "Die IT hat auf Ihre Meldung geantwortet",
            [
                "Neu",
                "Wird geprüft",
                "Phishing bestätigt",
                "Spam",
                "Harmlos",
                "Aktualisiert",
            ],
        ),
        Lang::Fr => (
            "L’IT a répondu à votre signalement",
            [
                "Nouveau",
                "En cours d’examen",
                "Hameçonnage confirmé",
                "Spam",
                "Sans danger",
                "Mis à jour",
            ],
        ),
        _ => (
            "IT answered your phishing report",
            [
                "New",
                "Being looked at",
                "Confirmed phishing",
                "Spam",
                "Safe",
                "Updated",
            ],
        ),
    };
    let verdict = match reply.status {
        TriageStatus::New => verdicts[0],
        TriageStatus::Investigating => verdicts[1],
        TriageStatus::Phishing => verdicts[2],
        TriageStatus::Spam => verdicts[3],
        TriageStatus::Safe => verdicts[4],
        TriageStatus::Unknown => verdicts[5],
    };
    let mut body = format!("{} · {verdict}", reply.tracking_id);
    if let Some(text) = &reply.reply {
        body.push('\n');
        body.push_str(&escape_markup(text));
    }
    (title.to_owned(), body)
}

fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Shows the notification; `true` when the user clicked it.
#[cfg(all(unix, not(target_os = "macos")))]
fn notify(title: &str, body: &str) -> Result<bool, notify_rust::error::Error> {
    let mut n = notify_rust::Notification::new();
    n.appname("Tandem")
        .summary(title)
        .body(body)
        .icon("dialog-information")
        .action("default", "Open");
    let mut clicked = false;
    n.show()?
        .wait_for_action(|action| clicked = action == "default");
    Ok(clicked)
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn notify(title: &str, body: &str) -> Result<bool, notify_rust::error::Error> {
    notify_rust::Notification::new()
        .appname("Tandem")
        .summary(title)
        .body(body)
        .show()?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_says_which_report_the_verdict_and_it_s_words() {
        let reply = PhishingReply {
            tracking_id: "PH-ABC".into(),
            status: TriageStatus::Phishing,
            reply: Some("thanks — confirmed phishing".into()),
        };
        let (title, body) = words(&reply, Lang::En);
        assert_eq!(title, "IT answered your phishing report");
        assert_eq!(
            body,
            "PH-ABC · Confirmed phishing\nthanks — confirmed phishing"
        );
        assert!(words(&reply, Lang::De).1.contains("Phishing bestätigt"));
        let markup = PhishingReply {
            reply: Some("<b>bold</b> & co".into()),
            ..reply
        };
        assert!(words(&markup, Lang::Fr)
            .1
            .ends_with("&lt;b&gt;bold&lt;/b&gt; &amp; co"));
    }
}
