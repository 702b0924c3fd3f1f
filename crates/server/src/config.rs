//! Server configuration and where its files live by default.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::StoreOptions;

/// Everything `App::open` and `App::bind` need.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://PATH` (created when missing); `postgres://…` arrives with issue 4.
    pub database_url: String,
    pub listen: SocketAddr,
    /// The longest a policy long-poll is held, whatever `?wait=` asks for.
    pub max_long_poll: Duration,
    pub store: StoreOptions,
}

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
