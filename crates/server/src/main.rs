//! `tandem-server`: the command line around the `tandem_server` library.
//!
//! Commands that hand out a secret print it alone on the last line of stdout, so scripts can
//! take it with `tail -n 1`; logs go to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tandem_server::config::{default_data_dir, sqlite_url_in, DEFAULT_LISTEN};
use tandem_server::{App, Config, EnrollSecretOptions, PutPolicyOutcome, Role};

/// Report ingest allocates hundreds of small strings per report (the parsed JSON); glibc's
/// allocator spent about a fifth of the server's CPU on them (BENCHMARKS.md, issue 4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "tandem-server",
    version,
    about = "Tandem server: enrolment, reports, policy push"
)]
struct Cli {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct DatabaseArgs {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default: a SQLite file in the
    /// data dir.
    #[arg(
        long,
        global = true,
        env = "TANDEM_SERVER_DATABASE",
        value_name = "URL"
    )]
    database: Option<String>,
    /// Where the default SQLite database lives.
    /// Default: $XDG_DATA_HOME/tandem-server or ~/.local/share/tandem-server.
    #[arg(
        long,
        global = true,
        env = "TANDEM_SERVER_DATA_DIR",
        value_name = "DIR"
    )]
    data_dir: Option<PathBuf>,
    /// The key that encrypts identity-source and webhook credentials in the database: a
    /// file of 32 random bytes (or their base64), created 0600 when missing. Default:
    /// `secrets.key` next to the SQLite database; with PostgreSQL, in the data dir, and
    /// then every replica must be given a copy of the same file.
    #[arg(
        long,
        global = true,
        env = "TANDEM_SECRETS_KEY_FILE",
        value_name = "FILE"
    )]
    secrets_key_file: Option<PathBuf>,
}

impl DatabaseArgs {
    /// The database URL to use, creating the data dir when the default file lives there.
    /// The secrets key file to use: the one given; with PostgreSQL, `secrets.key` in the
    /// data dir (created), with a warning that replicas must share it; else `None`, which
    /// puts it next to the SQLite database.
    fn secrets_key_file(&self, database_url: &str) -> Result<Option<PathBuf>> {
        if let Some(file) = &self.secrets_key_file {
            return Ok(Some(file.clone()));
        }
        if database_url.starts_with("sqlite:") {
            return Ok(None);
        }
        let dir = match &self.data_dir {
            Some(dir) => dir.clone(),
            None => default_data_dir().unwrap_or_else(|| PathBuf::from(".")),
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("could not create the data dir {}", dir.display()))?;
        let file = dir.join(tandem_server::secrets::KEY_FILE);
        tracing::warn!(
            path = %file.display(),
            "no --secrets-key-file given: the key that encrypts stored credentials is this \
             machine's file; every replica on this database must use a copy of the same file"
        );
        Ok(Some(file))
    }

    fn url(&self) -> Result<String> {
        if let Some(url) = &self.database {
            return Ok(url.clone());
        }
        let dir = match &self.data_dir {
            Some(dir) => dir.clone(),
            None => default_data_dir()
                .context("no data dir: set --data-dir, TANDEM_SERVER_DATA_DIR or HOME")?,
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("could not create the data dir {}", dir.display()))?;
        Ok(sqlite_url_in(&dir))
    }
}

/// OpenID Connect sign-in to the console (docs/deploy/oidc.md).
#[derive(Debug, Args)]
struct OidcArgs {
    /// OpenID Connect sign-in to the console: the identity provider's issuer, exactly as
    /// its discovery document names it (e.g. https://acme.okta.com). Needs
    /// --oidc-client-id, a client secret and --public-url; the redirect URI to register
    /// is {public-url}/console/oidc/callback. The client secret is read from
    /// TANDEM_SERVER_OIDC_CLIENT_SECRET or --oidc-client-secret-file, never a flag.
    #[arg(
        long,
        env = "TANDEM_SERVER_OIDC_ISSUER",
        value_name = "URL",
        requires = "oidc_client_id"
    )]
    oidc_issuer: Option<String>,
    /// The console's client id at the identity provider.
    #[arg(
        long,
        env = "TANDEM_SERVER_OIDC_CLIENT_ID",
        value_name = "ID",
        requires = "oidc_issuer"
    )]
    oidc_client_id: Option<String>,
    /// A file holding the client secret (its first line), e.g. a systemd credential.
    #[arg(
        long,
        env = "TANDEM_SERVER_OIDC_CLIENT_SECRET_FILE",
        value_name = "FILE"
    )]
    oidc_client_secret_file: Option<PathBuf>,
    /// The button's words after "Sign in with" (default: "single sign-on").
    #[arg(long, env = "TANDEM_SERVER_OIDC_NAME", value_name = "NAME")]
    oidc_name: Option<String>,
    /// The scopes to ask for, space-separated (default: "openid email profile").
    #[arg(long, env = "TANDEM_SERVER_OIDC_SCOPES", value_name = "SCOPES")]
    oidc_scopes: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the agent and admin APIs.
    Serve {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, env = "TANDEM_SERVER_LISTEN", default_value_t = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// A JSON file listing identity sources to poll (Okta, Entra, Google, Duo).
        #[arg(long, env = "TANDEM_SERVER_IDENTITY_SOURCES", value_name = "FILE")]
        identity_sources: Option<PathBuf>,
        /// A JSON file listing webhooks (url, format generic|slack, secret, events).
        #[arg(long, env = "TANDEM_SERVER_WEBHOOKS", value_name = "FILE")]
        webhooks: Option<PathBuf>,
        /// Enrolments allowed per source address per minute (also the burst); 0 turns the
        /// limit off, e.g. for a fleet simulator enrolling thousands of agents from one host.
        #[arg(long, env = "TANDEM_SERVER_ENROLL_RATE_LIMIT", value_name = "N")]
        enroll_rate_limit: Option<u32>,
        /// Console sign-in attempts (password form and single-sign-on callback) allowed per
        /// source address per minute (also the burst); 0 turns the limit off. Default: 20.
        #[arg(long, env = "TANDEM_SERVER_SIGN_IN_RATE_LIMIT", value_name = "N")]
        sign_in_rate_limit: Option<u32>,
        /// Requests allowed per device or API token per minute (also the burst); 0 turns the
        /// limit off. Default: 300 a minute with bursts of 100.
        #[arg(long, env = "TANDEM_SERVER_TOKEN_RATE_LIMIT", value_name = "N")]
        token_rate_limit: Option<u32>,
        /// Days raw reports are kept (each device's newest is kept regardless); default 90.
        #[arg(long, env = "TANDEM_SERVER_REPORT_RETENTION_DAYS", value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
        report_retention_days: Option<u32>,
        /// A reverse proxy (address or CIDR) whose X-Forwarded-For header names the client;
        /// repeat for several. Without it the header is ignored.
        #[arg(
            long = "trusted-proxy",
            env = "TANDEM_SERVER_TRUSTED_PROXIES",
            value_name = "CIDR",
            value_delimiter = ','
        )]
        trusted_proxies: Vec<String>,
        /// Terminate TLS with this certificate chain (PEM, server certificate first).
        #[arg(
            long,
            env = "TANDEM_SERVER_TLS_CERT",
            value_name = "FILE",
            requires = "tls_key"
        )]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --tls-cert.
        #[arg(
            long,
            env = "TANDEM_SERVER_TLS_KEY",
            value_name = "FILE",
            requires = "tls_cert"
        )]
        tls_key: Option<PathBuf>,
        /// The agent updater's public key: the contents of the `.pub` file written by
        /// `tauri signer generate` (the same value as `pubkey` in tauri.conf.json). Release
        /// uploads whose signature does not verify with it are refused.
        #[arg(long, env = "TANDEM_SERVER_UPDATER_PUBKEY", value_name = "KEY")]
        updater_pubkey: Option<String>,
        /// The address agents use for this server, for artifact URLs in update answers
        /// (default: the `Host` each agent asked).
        #[arg(long, env = "TANDEM_SERVER_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
        /// OpenID Connect sign-in to the console (boxed: the flags would make this
        /// variant much larger than the others).
        #[command(flatten)]
        oidc: Box<OidcArgs>,
    },
    /// Manage enrolment secrets.
    #[command(subcommand)]
    EnrollSecret(EnrollSecretCommand),
    /// Manage admin API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage group policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Export fleet data for auditors.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Manage IT console accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage the key that encrypts stored credentials (--secrets-key-file).
    #[command(subcommand)]
    SecretsKey(SecretsKeyCommand),
}

#[derive(Debug, Subcommand)]
enum SecretsKeyCommand {
    /// Encrypt every stored credential again with a new key file (created when missing),
    /// then give every server that file in place of the current one and restart them.
    Rotate {
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a console account. The password is read from TANDEM_SERVER_ADMIN_PASSWORD or,
    /// when unset, from the first line of stdin; the TOTP secret is printed alone on the last
    /// line, after the otpauth:// URI for authenticator apps.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, value_enum, default_value = "admin")]
        role: RoleArg,
    },
}

#[derive(Debug, Subcommand)]
enum ExportCommand {
    /// Write the fleet compliance CSV (one row per device, one column per check).
    Compliance {
        /// Where to write it; stdout when missing.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum EnrollSecretCommand {
    /// Create a secret; it is printed alone on the last line.
    Create {
        /// The group that devices enrolled with this secret join (created when missing).
        #[arg(long, default_value = "default")]
        group: String,
        #[arg(long, value_name = "N")]
        expires_in_days: Option<u32>,
        #[arg(long, value_name = "N")]
        max_uses: Option<u32>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    Viewer,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API token; it is printed alone on the last line.
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A label for people reading the audit log.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file and store it as the group's next version.
    Push {
        #[arg(long)]
        group: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Before any database opens, while this is the only thread (see the module's docs).
    tandem_server::store::sqlite::page_cache::install();
    let runtime = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let url = cli.db.url()?;
    let mut config = Config::new(url);
    config.secrets_key_file = cli.db.secrets_key_file(&config.database_url)?;
    match cli.command {
        Command::Serve {
            listen,
            identity_sources,
            webhooks,
            enroll_rate_limit,
            sign_in_rate_limit,
            token_rate_limit,
            trusted_proxies,
            report_retention_days,
            tls_cert,
            tls_key,
            updater_pubkey,
            public_url,
            oidc,
        } => {
            let OidcArgs {
                oidc_issuer,
                oidc_client_id,
                oidc_client_secret_file,
                oidc_name,
                oidc_scopes,
            } = *oidc;
            if let (Some(issuer), Some(client_id)) = (oidc_issuer, oidc_client_id) {
                let client_secret = oidc_client_secret(oidc_client_secret_file.as_deref())?;
                config.oidc = Some(tandem_server::config::OidcConfig {
                    issuer,
                    client_id,
                    client_secret,
                    display_name: oidc_name
                        .filter(|n| !n.trim().is_empty())
                        .unwrap_or_else(|| "single sign-on".to_owned()),
                    scopes: oidc_scopes
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect(),
                });
            }
            if let Some(key) = &updater_pubkey {
                tandem_server::releases::check_public_key(key)
                    .context("--updater-pubkey is not an updater public key")?;
            }
            config.updater_public_key = updater_pubkey;
            config.public_url = public_url.map(|u| u.trim_end_matches('/').to_owned());
            if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                config.tls = Some(tandem_server::tls::TlsFiles { cert, key });
            }
            if let Some(days) = report_retention_days {
                config.report_retention =
                    std::time::Duration::from_secs(u64::from(days) * 24 * 60 * 60);
            }
            if let Some(n) = token_rate_limit {
                config.token_rate_limit = tandem_server::config::RateLimit::flag(n);
            }
            for proxy in &trusted_proxies {
                let net = match proxy.parse::<ipnet::IpNet>() {
                    Ok(net) => net,
                    Err(_) => proxy
                        .parse::<std::net::IpAddr>()
                        .map(ipnet::IpNet::from)
                        .with_context(|| {
                            format!("--trusted-proxy {proxy}: not an address or CIDR")
                        })?,
                };
                config.trusted_proxies.push(net);
            }
            if let Some(n) = enroll_rate_limit {
                config.enroll_rate_limit = tandem_server::config::RateLimit::flag(n);
            }
            if let Some(n) = sign_in_rate_limit {
                config.sign_in_rate_limit = tandem_server::config::RateLimit::flag(n);
            }
            if let Some(file) = webhooks {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("could not read {}", file.display()))?;
                config.webhooks = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a list of webhooks", file.display()))?;
            }
            config.listen = listen;
            if let Some(file) = identity_sources {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("could not read {}", file.display()))?;
                config.identity_sources = serde_json::from_str(&text).with_context(|| {
                    format!("{} is not a list of identity sources", file.display())
                })?;
            }
            tandem_server::serve(config, shutdown_signal()).await?;
        }
        Command::EnrollSecret(EnrollSecretCommand::Create {
            group,
            expires_in_days,
            max_uses,
        }) => {
            let app = open(&config).await?;
            let options = EnrollSecretOptions {
                group,
                expires_in: expires_in_days.map(|d| chrono::Duration::days(d.into())),
                max_uses,
                ..EnrollSecretOptions::default()
            };
            let secret = app.create_enroll_secret(&options).await?;
            let expiry = expires_in_days.map_or("never".to_owned(), |d| format!("in {d} days"));
            let uses = max_uses.map_or("unlimited".to_owned(), |n| n.to_string());
            println!(
                "enrolment secret for group {} (expires: {expiry}; uses: {uses}):",
                options.group
            );
            println!("{secret}");
        }
        Command::Token(TokenCommand::Create { role, name }) => {
            let app = open(&config).await?;
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Viewer => Role::Viewer,
            };
            let token = app.create_api_token(role, &name).await?;
            println!("API token {name:?} with role {}:", role.as_str());
            println!("{token}");
        }
        Command::Policy(PolicyCommand::Push { group, file }) => {
            let app = open(&config).await?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("could not read {}", file.display()))?;
            let body: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let outcome = app.push_policy(&group, body, "cli").await?;
            let (p, note) = match &outcome {
                PutPolicyOutcome::Created(p) => (p, ""),
                PutPolicyOutcome::Unchanged(p) => (p, " (unchanged)"),
            };
            println!(
                "group {} version {} etag {}{note}",
                p.group, p.version, p.etag
            );
        }
        Command::Admin(AdminCommand::Create { username, role }) => {
            let app = open(&config).await?;
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Viewer => Role::Viewer,
            };
            let password = match std::env::var("TANDEM_SERVER_ADMIN_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("could not read the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let secret = app.create_console_admin(&username, &password, role).await?;
            println!("console account {username} with role {}", role.as_str());
            println!(
                "add to an authenticator app: {}",
                tandem_server::console::auth::provisioning_uri(&username, &secret)
            );
            println!("TOTP secret:");
            println!("{secret}");
        }
        Command::SecretsKey(SecretsKeyCommand::Rotate { new_key_file }) => {
            let app = open(&config).await?;
            let (id, n) = app
                .rotate_secrets_key(&new_key_file)
                .await
                .context("could not rotate the secrets key")?;
            eprintln!(
                "{n} records encrypted again with key {id}; now give every server {} as its \
                 --secrets-key-file (replacing the old file) and restart them",
                new_key_file.display()
            );
        }
        Command::Export(ExportCommand::Compliance { output }) => {
            let app = open(&config).await?;
            let csv = app.compliance_csv().await?;
            match output {
                Some(file) => std::fs::write(&file, csv)
                    .with_context(|| format!("could not write {}", file.display()))?,
                None => {
                    use std::io::Write as _;
                    std::io::stdout()
                        .write_all(&csv)
                        .context("could not write to stdout")?;
                }
            }
        }
    }
    Ok(())
}

async fn open(config: &Config) -> Result<App> {
    if config.database_url.is_empty() {
        bail!("the database URL is empty");
    }
    // The URL is not repeated: a PostgreSQL URL may carry a password.
    App::open(config)
        .await
        .context("could not open the database")
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one (systemd, containers).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "could not listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate() => {}
    }
}

#[cfg(unix)]
async fn terminate() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(e) => {
            tracing::error!(error = %e, "could not listen for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await;
}

/// The OpenID Connect client secret: from the file when one is named, else from
/// `TANDEM_SERVER_OIDC_CLIENT_SECRET`. Never a flag, so that it does not show in `ps`.
fn oidc_client_secret(file: Option<&std::path::Path>) -> Result<String> {
    let secret = match file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("could not read {}", file.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        None => std::env::var("TANDEM_SERVER_OIDC_CLIENT_SECRET")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    if secret.is_empty() {
        anyhow::bail!(
            "OpenID Connect needs a client secret: set TANDEM_SERVER_OIDC_CLIENT_SECRET or --oidc-client-secret-file"
        );
    }
    Ok(secret)
}
