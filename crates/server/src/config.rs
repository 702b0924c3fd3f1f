//! Server configuration and where its files live by default.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::identity::sources::SourceConfig;
use crate::store::StoreOptions;
use crate::webhooks::{RetryPolicy, WebhookConfig};

/// Everything `App::open` and `App::bind` need.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://PATH` (created when missing) or `postgres://…` (the database must exist).
    pub database_url: String,
    pub listen: SocketAddr,
    /// The longest a policy long-poll is held, whatever `?wait=` asks for.
    pub max_long_poll: Duration,
    pub store: StoreOptions,
    /// Identity sources to poll. With several replicas, configure them on one only: each
    /// replica that has them polls the vendors.
    pub identity_sources: Vec<SourceConfig>,
    pub webhooks: Vec<WebhookConfig>,
    pub webhook_retry: RetryPolicy,
    /// Enrolments allowed per source address; `None` for no limit.
    pub enroll_rate_limit: Option<RateLimit>,
}

/// A token bucket: `burst` at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

/// Generous for a fleet behind one NAT enrolling at once, slow for guessing secrets.
pub const DEFAULT_ENROLL_RATE_LIMIT: RateLimit = RateLimit {
    per_minute: 60,
    burst: 30,
};

pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
pub const DEFAULT_MAX_LONG_POLL: Duration = Duration::from_secs(300);
pub const DATABASE_FILE: &str = "tandem-server.db";

impl Config {
    /// Defaults for everything but the database.
    pub fn new(database_url: impl Into<String>) -> Self {
        Config {
            database_url: database_url.into(),
            listen: DEFAULT_LISTEN,
            max_long_poll: DEFAULT_MAX_LONG_POLL,
            store: StoreOptions::default(),
            identity_sources: Vec::new(),
            webhooks: Vec::new(),
            webhook_retry: RetryPolicy::default(),
            enroll_rate_limit: Some(DEFAULT_ENROLL_RATE_LIMIT),
        }
    }
}

/// `$XDG_DATA_HOME/tandem-server`, else `~/.local/share/tandem-server`; `None` when neither
/// variable is set.
pub fn default_data_dir() -> Option<PathBuf> {
    let non_empty = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    // The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    let base = non_empty("XDG_DATA_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| non_empty("HOME").map(|home| home.join(".local").join("share")))?;
    Some(base.join("tandem-server"))
}

/// The URL of the SQLite database file inside `data_dir`.
pub fn sqlite_url_in(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join(DATABASE_FILE).display())
}
