//! Server configuration and where its files live by default.

use ipnet::IpNet;
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
    /// Console sign-in attempts (password form and OpenID Connect callback) allowed per
    /// source address; `None` for no limit. The per-account lockout stops guessing one
    /// account; this bounds what one address can make the server do (argon2, audit rows,
    /// calls to the identity provider) across all of them.
    pub sign_in_rate_limit: Option<RateLimit>,
    /// Reports waiting to be written at most; past it, reports are refused with 503 and
    /// `Retry-After` until the database catches up.
    pub report_queue: usize,
    /// How long raw reports are kept (each device's newest is kept regardless).
    pub report_retention: Duration,
    /// Requests allowed per device token and per API token; `None` for no limit.
    pub token_rate_limit: Option<RateLimit>,
    /// Reverse proxies whose `X-Forwarded-For` is believed: the client address of a request
    /// from one of them is the nearest address in that header that is not itself a proxy.
    pub trusted_proxies: Vec<IpNet>,
    /// Terminate TLS with these files; `None` serves plain HTTP (behind a proxy).
    pub tls: Option<crate::tls::TlsFiles>,
    /// The agent updater's public key (the `.pub` file `tauri signer generate` writes, as
    /// in `tauri.conf.json`); uploads are checked against it. `None` refuses all uploads.
    pub updater_public_key: Option<String>,
    /// The address agents reach the server at (`https://tandem.example.com`), for the
    /// artifact URLs in update answers; `None` takes it from each request's `Host`.
    pub public_url: Option<String>,
    /// The file holding the key that seals identity-source and webhook credentials in the
    /// database (`secrets.rs`); `None`: `secrets.key` next to a SQLite database, or in the
    /// data dir with PostgreSQL, created when missing. Replicas must share one key.
    pub secrets_key_file: Option<PathBuf>,
    /// OpenID Connect sign-in to the console; `None` offers the password sign-in only. Needs
    /// `public_url`, from which the redirect URI is derived.
    pub oidc: Option<OidcConfig>,
}

/// The console's OpenID Connect client registration at the organisation's identity provider.
#[derive(Clone)]
pub struct OidcConfig {
    /// The issuer exactly as the provider's discovery document names it
    /// (`https://acme.okta.com`); discovery is fetched from
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Never logged or shown (see the `Debug` implementation).
    pub client_secret: String,
    /// The button's words after "Sign in with", e.g. "Okta".
    pub display_name: String,
    /// The scopes asked for; `openid` is always among them.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("display_name", &self.display_name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The scopes asked for when none are configured: the subject, and the email that links a
/// provider account to a console account on its first sign-in.
pub const DEFAULT_OIDC_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// A token bucket: `burst` at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl RateLimit {
    /// What a `--…-rate-limit N` flag asks for: N a minute with bursts of N; 0 turns the
    /// limit off.
    pub fn flag(n: u32) -> Option<RateLimit> {
        (n > 0).then_some(RateLimit {
            per_minute: n,
            burst: n,
        })
    }
}

/// Generous for a fleet behind one NAT enrolling at once, slow for guessing secrets.
pub const DEFAULT_ENROLL_RATE_LIMIT: RateLimit = RateLimit {
    per_minute: 60,
    burst: 30,
};

/// A person signs in a few times a day; an office behind one address, a few dozen times an
/// hour.
pub const DEFAULT_SIGN_IN_RATE_LIMIT: RateLimit = RateLimit {
    per_minute: 20,
    burst: 20,
};

/// An agent makes a long-poll a minute and a report every quarter hour; an admin script a
/// burst of reads. This leaves both untouched and stops a leaked token hammering the server.
pub const DEFAULT_TOKEN_RATE_LIMIT: RateLimit = RateLimit {
    per_minute: 300,
    burst: 100,
};

/// Raw reports are evidence for audits over a quarter; older ones are summarised by the
/// latest results and the compliance history.
pub const DEFAULT_REPORT_RETENTION: Duration = Duration::from_secs(90 * 24 * 60 * 60);

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
            sign_in_rate_limit: Some(DEFAULT_SIGN_IN_RATE_LIMIT),
            token_rate_limit: Some(DEFAULT_TOKEN_RATE_LIMIT),
            report_retention: DEFAULT_REPORT_RETENTION,
            report_queue: crate::batch::REPORT_QUEUE,
            trusted_proxies: Vec::new(),
            tls: None,
            updater_public_key: None,
            public_url: None,
            secrets_key_file: None,
            oidc: None,
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
