//! Records of the identity sources and webhooks IT configures in the console (issue 7). The
//! store keeps each one's configuration as JSON, secrets included, and writes it to the
//! audit log only through [`redacted`]. The `Store` methods that read and write them sit in
//! their own block at the end of the trait.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// Audit-log actions of these records.
pub mod action {
    pub const SOURCE_CREATE: &str = "identity_source.create";
    pub const SOURCE_UPDATE: &str = "identity_source.update";
    pub const SOURCE_DELETE: &str = "identity_source.delete";
    pub const WEBHOOK_CREATE: &str = "webhook.create";
    pub const WEBHOOK_UPDATE: &str = "webhook.update";
    pub const WEBHOOK_DELETE: &str = "webhook.delete";
}

/// The configuration fields that hold credentials, in any source kind or hook.
pub const SECRET_FIELDS: &[&str] = &[
    "api_token",
    "client_secret",
    "access_token",
    "secret_key",
    "secret",
];

/// What the audit log shows of a stored configuration: every secret field replaced by a
/// marker that says only whether it was set.
pub fn redacted(config: &Value) -> Value {
    let mut out = config.clone();
    if let Value::Object(map) = &mut out {
        for key in SECRET_FIELDS {
            if let Some(v) = map.get_mut(*key) {
                *v = Value::String("<redacted>".into());
            }
        }
    }
    out
}

/// One identity source configured in the console. `config` is a `SourceConfig` as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSourceConfig {
    pub name: String,
    pub kind: String,
    pub config: Value,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// One webhook configured in the console. `config` is a `WebhookConfig` as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWebhook {
    pub id: Uuid,
    pub name: String,
    pub config: Value,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let v =
            serde_json::json!({"name": "okta", "api_token": "hunter2", "base_url": "https://a"});
        let r = redacted(&v);
        assert_eq!(r["api_token"], "<redacted>");
        assert_eq!(r["base_url"], "https://a");
        assert!(!r.to_string().contains("hunter2"));
    }
}
