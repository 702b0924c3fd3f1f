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

use std::sync::{Arc, RwLock};
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
use crate::secrets::SecretsKey;
use crate::store::{Store, StoreError};

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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Generic,
    Slack,
}

/// One configured hook, from the webhooks file or the console. It serializes (secret
/// included) for the store only.
#[derive(Debug, Clone, Deserialize, Serialize)]
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

impl EventKind {
    /// Every kind, in the order the console offers them.
    pub const ALL: [EventKind; 3] = [
        EventKind::PhishingReported,
        EventKind::DeviceOverdue,
        EventKind::DeviceFixed,
    ];

    /// The wire name (`phishing_reported`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PhishingReported => "phishing_reported",
            EventKind::DeviceFixed => "device_fixed",
            EventKind::DeviceOverdue => "device_overdue",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The longest webhook secret and URL the console accepts.
pub const MAX_SECRET: usize = 1024;
pub const MAX_URL: usize = 2048;

/// Checks a hook configured in the console before it is stored: an `https://` URL (plain
/// `http://` only to this machine), and a secret to sign with.
pub fn validate(hook: &WebhookConfig) -> Result<(), String> {
    if hook.url.len() > MAX_URL {
        return Err(format!("the URL is longer than {MAX_URL} characters"));
    }
    crate::identity::sources::check_url("the URL", &hook.url)?;
    if hook.secret.0.trim().is_empty() {
        return Err("the signing secret is empty".into());
    }
    if hook.secret.0.len() > MAX_SECRET {
        return Err(format!(
            "the signing secret is longer than {MAX_SECRET} characters"
        ));
    }
    Ok(())
}

/// The sending side every handler shares. Cheap to clone; sending never waits. The hooks
/// are the file's plus the console's; the console's are read again after each change made
/// through this process and every [`REFRESH`] (changes made through another replica).
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    queue: Option<mpsc::Sender<Event>>,
    file: Arc<Vec<WebhookConfig>>,
    hooks: Arc<RwLock<Arc<Vec<WebhookConfig>>>>,
    /// Opens the console's hooks' sealed URLs and secrets (`secrets.rs`).
    secrets: Option<SecretsKey>,
}

/// How often the console's hooks are read again, for changes made through other replicas.
pub const REFRESH: Duration = Duration::from_secs(30);

impl Webhooks {
    /// Starts the dispatcher with the file's hooks; [`Webhooks::reload`] adds the console's.
    pub fn start(
        hooks: Vec<WebhookConfig>,
        retry: RetryPolicy,
        shutdown: CancellationToken,
        secrets: SecretsKey,
    ) -> Webhooks {
        let file = Arc::new(hooks);
        let current = Arc::new(RwLock::new(Arc::clone(&file)));
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(dispatch(rx, Arc::clone(&current), retry, shutdown));
        Webhooks {
            queue: Some(tx),
            file,
            hooks: current,
            secrets: Some(secrets),
        }
    }

    /// The hooks in force now.
    fn current(&self) -> Arc<Vec<WebhookConfig>> {
        match self.hooks.read() {
            Ok(h) => Arc::clone(&h),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reads the console's hooks from the store again. One whose stored form no longer
    /// parses, or whose secrets do not open with this server's key, is left out with a
    /// warning.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let mut hooks: Vec<WebhookConfig> = self.file.as_ref().clone();
        for stored in store.list_webhook_configs().await? {
            let opened = match &self.secrets {
                Some(key) => key.open_webhook(&stored),
                None => Ok(stored.clone()),
            };
            let config = match opened {
                Ok(o) => o.config,
                Err(e) => {
                    tracing::error!(hook = %stored.name, error = %e, "stored webhook is not sent");
                    continue;
                }
            };
            match serde_json::from_value::<WebhookConfig>(config) {
                Ok(h) => hooks.push(h),
                Err(e) => {
                    tracing::warn!(hook = %stored.name, error = %e, "stored webhook does not parse")
                }
            }
        }
        let hooks = Arc::new(hooks);
        match self.hooks.write() {
            Ok(mut h) => *h = hooks,
            Err(poisoned) => *poisoned.into_inner() = hooks,
        }
        Ok(())
    }

    /// Reloads the console's hooks every `every` until `shutdown`.
    pub fn spawn_refresher(
        &self,
        store: Arc<dyn Store>,
        every: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = this.reload(&*store).await {
                    tracing::warn!(error = %e, "could not reload the webhooks");
                }
            }
        })
    }

    /// Whether any hook wants `kind`, so callers can skip work for events nobody hears.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.current()
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
    hooks: Arc<RwLock<Arc<Vec<WebhookConfig>>>>,
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
        let current = match hooks.read() {
            Ok(h) => Arc::clone(&h),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        for hook in current.iter() {
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

/// One signed POST of `body` to `hook`.
async fn post_once(
    http: &reqwest::Client,
    hook: &WebhookConfig,
    event_name: &str,
    id: Uuid,
    body: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    let timestamp = Utc::now().timestamp();
    http.post(&hook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-tandem-event", event_name)
        .header("x-tandem-delivery", id.to_string())
        .header("x-tandem-timestamp", timestamp.to_string())
        .header(
            "x-tandem-signature",
            signature(&hook.secret.0, timestamp, body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
}

/// Delivers one signed test event to `hook`, once, without retrying, and returns the HTTP
/// status it answered or why it could not be reached.
pub async fn send_test(hook: &WebhookConfig, at: DateTime<Utc>) -> Result<u16, String> {
    let http = crate::identity::sources::http_client();
    let id = Uuid::now_v7();
    let message = "Tandem test delivery: this webhook is set up correctly.";
    let body = match hook.format {
        Format::Slack => json!({"text": message}),
        Format::Generic => {
            json!({"id": id, "event": "test", "at": at, "data": {"message": message}})
        }
    }
    .to_string();
    match post_once(&http, hook, "Test", id, &body).await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            Err(message)
        }
    }
}

async fn deliver(http: &reqwest::Client, hook: &WebhookConfig, event: &Event, retry: &RetryPolicy) {
    let id = Uuid::now_v7();
    let body = event.body(id, hook.format).to_string();
    let name = format!("{:?}", event.kind());
    let mut backoff = retry.first_backoff;
    for attempt in 1..=retry.attempts {
        let result = post_once(http, hook, &name, id, &body).await;
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
