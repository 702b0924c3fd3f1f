//! Webhooks: IT's chat or ticketing systems hear of phishing reports and of devices that
//! became compliant again, as generic JSON or as a Slack-compatible `{"text": …}` message.
//!
//! Each delivery is signed: `X-Tandem-Timestamp` (Unix seconds) and `X-Tandem-Signature:
//! sha256=HEX`, the HMAC-SHA256 with the hook's secret over `TIMESTAMP.BODY`, so a receiver
//! can check both origin and freshness. Failed deliveries (network errors, 429, 5xx) are
//! retried with exponential backoff; other 4xx answers are final. Events wait in a bounded
//! queue: when a receiver is down for long, new events are dropped with a warning rather
//! than growing memory without bound. A delivery carries the same `id` on every attempt,
//! so receivers can drop duplicates.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::identity::sources::Secret;

/// Events waiting for delivery, over all hooks.
const QUEUE: usize = 1024;
/// Deliveries in flight at once.
const IN_FLIGHT: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PhishingReported,
    DeviceFixed,
    DeviceOverdue,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Generic,
    Slack,
}

/// One configured hook.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default)]
    pub format: Format,
    pub secret: Secret,
    /// The events it wants; all of them when empty.
    #[serde(default)]
    pub events: Vec<EventKind>,
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    PhishingReported {
        tracking_id: String,
        device_id: Uuid,
        subject: Option<String>,
        url: Option<String>,
        at: DateTime<Utc>,
    },
    DeviceFixed {
        device_id: Uuid,
        hostname: String,
        at: DateTime<Utc>,
    },
    /// One or more of a device's checks passed their deadline.
    DeviceOverdue {
        device_id: Uuid,
        hostname: String,
        user: Option<String>,
        /// `(check, deadline)` for each check that became overdue.
        checks: Vec<(String, DateTime<Utc>)>,
        at: DateTime<Utc>,
    },
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::PhishingReported { .. } => EventKind::PhishingReported,
            Event::DeviceFixed { .. } => EventKind::DeviceFixed,
            Event::DeviceOverdue { .. } => EventKind::DeviceOverdue,
        }
    }

    fn data(&self) -> (DateTime<Utc>, Value) {
        match self {
            Event::PhishingReported {
                tracking_id,
                device_id,
                subject,
                url,
                at,
            } => (
                *at,
                json!({"tracking_id": tracking_id, "device_id": device_id, "subject": subject, "url": url}),
            ),
            Event::DeviceFixed {
                device_id,
                hostname,
                at,
            } => (*at, json!({"device_id": device_id, "hostname": hostname})),
            Event::DeviceOverdue {
                device_id,
                hostname,
                user,
                checks,
                at,
            } => (
                *at,
                json!({
                    "device_id": device_id,
                    "hostname": hostname,
                    "user": user,
                    "checks": checks
                        .iter()
                        .map(|(check, deadline)| json!({"check": check, "deadline": deadline}))
                        .collect::<Vec<_>>(),
                }),
            ),
        }
    }

    /// One line for a chat message. Device-supplied text is quoted with its control
    /// characters escaped, and Slack's `<`, `>` and `&` are escaped so that a subject such as
    /// `<!channel>` or `<https://evil|bank>` cannot ping everyone or disguise a link.
    fn chat_line(&self) -> String {
        let quote = |s: &str| {
            let escaped = s
                .escape_debug()
                .to_string()
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            format!("\u{201c}{escaped}\u{201d}")
        };
        match self {
            Event::PhishingReported {
                tracking_id,
                subject,
                url,
                ..
            } => {
                let what = match (subject, url) {
                    (Some(s), _) => format!("message {}", quote(s)),
                    (None, Some(u)) => format!("link {}", quote(u)),
                    (None, None) => "message".into(),
                };
                format!("Phishing report {tracking_id}: a user reported a suspicious {what}")
            }
            Event::DeviceFixed { hostname, .. } => {
                format!("Device {} has no failing checks any more", quote(hostname))
            }
            Event::DeviceOverdue {
                hostname,
                user,
                checks,
                ..
            } => {
                let names: Vec<&str> = checks.iter().map(|(c, _)| c.as_str()).collect();
                let whose = user
                    .as_deref()
                    .map(|u| format!(" ({})", quote(u)))
                    .unwrap_or_default();
                format!(
                    "Device {}{whose} is overdue: {}",
                    quote(hostname),
                    names.join(", ")
                )
            }
        }
    }

    fn body(&self, id: Uuid, format: Format) -> Value {
        match format {
            Format::Slack => json!({"text": self.chat_line()}),
            Format::Generic => {
                let (at, data) = self.data();
                json!({"id": id, "event": self.kind(), "at": at, "data": data})
            }
        }
    }
}

/// `sha256=HEX` over `TIMESTAMP.BODY`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes keys of any length; this arm cannot run.
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The sending side every handler shares. Cheap to clone; sending never waits.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    queue: Option<mpsc::Sender<Event>>,
    hooks: Arc<Vec<WebhookConfig>>,
}

impl Webhooks {
    /// Starts the dispatcher; with no hooks configured, nothing runs and sending is free.
    pub fn start(
        hooks: Vec<WebhookConfig>,
        retry: RetryPolicy,
        shutdown: CancellationToken,
    ) -> Webhooks {
        if hooks.is_empty() {
            return Webhooks::default();
        }
        let hooks = Arc::new(hooks);
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(dispatch(rx, Arc::clone(&hooks), retry, shutdown));
        Webhooks {
            queue: Some(tx),
            hooks,
        }
    }

    /// Whether any hook wants `kind`, so callers can skip work for events nobody hears.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.hooks
            .iter()
            .any(|h| h.events.is_empty() || h.events.contains(&kind))
    }

    pub fn send(&self, event: Event) {
        let Some(queue) = &self.queue else { return };
        if !self.wants(event.kind()) {
            return;
        }
        if let Err(e) = queue.try_send(event) {
            tracing::warn!(error = %e, "webhook queue full or closed; event dropped");
        }
    }
}

async fn dispatch(
    mut rx: mpsc::Receiver<Event>,
    hooks: Arc<Vec<WebhookConfig>>,
    retry: RetryPolicy,
    shutdown: CancellationToken,
) {
    let http = crate::identity::sources::http_client();
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = rx.recv() => match event { Some(e) => e, None => return },
        };
        for hook in hooks.iter() {
            if !(hook.events.is_empty() || hook.events.contains(&event.kind())) {
                continue;
            }
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (http, hook, retry, shutdown) =
                (http.clone(), hook.clone(), retry.clone(), shutdown.clone());
            let event = event.clone();
            tokio::spawn(async move {
                let _slot = slot;
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = deliver(&http, &hook, &event, &retry) => {}
                }
            });
        }
    }
}

async fn deliver(http: &reqwest::Client, hook: &WebhookConfig, event: &Event, retry: &RetryPolicy) {
    let id = Uuid::now_v7();
    let body = event.body(id, hook.format).to_string();
    let mut backoff = retry.first_backoff;
    for attempt in 1..=retry.attempts {
        let timestamp = Utc::now().timestamp();
        let result = http
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-tandem-event", format!("{:?}", event.kind()))
            .header("x-tandem-delivery", id.to_string())
            .header("x-tandem-timestamp", timestamp.to_string())
            .header(
                "x-tandem-signature",
                signature(&hook.secret.0, timestamp, body.as_bytes()),
            )
            .body(body.clone())
            .send()
            .await;
        let retryable = match result {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                let s = r.status();
                tracing::warn!(url = %hook.url, status = s.as_u16(), attempt, "webhook refused");
                s.is_server_error() || s == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            Err(e) => {
                tracing::warn!(url = %hook.url, error = %e, attempt, "webhook failed");
                true
            }
        };
        if !retryable || attempt == retry.attempts {
            tracing::error!(url = %hook.url, delivery = %id, "webhook given up");
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(retry.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_timestamp_and_the_body() {
        let a = signature("s", 1, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, signature("s", 2, b"{}"));
        assert_ne!(a, signature("t", 1, b"{}"));
        assert_ne!(a, signature("s", 1, b"[]"));
    }

    #[test]
    fn chat_messages_cannot_ping_or_disguise_links() {
        let event = Event::PhishingReported {
            tracking_id: "PH-1".into(),
            device_id: Uuid::nil(),
            subject: Some("<!channel> <https://evil|bank> & \n more".into()),
            url: None,
            at: Utc::now(),
        };
        let text = event.body(Uuid::nil(), Format::Slack)["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            !text.contains('<') && !text.contains('>') && !text.contains('\n'),
            "{text}"
        );
        assert!(text.contains("&lt;!channel&gt;"));
    }
}
