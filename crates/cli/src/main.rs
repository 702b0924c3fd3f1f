//! `tandem`: the agent's headless face — check, status, enrol, sync, run, diagnose.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tandem_agent::{Agent, AgentConfig, CredentialStoreKind};
use tandem_checks::{Bundle, RealHost, RecordingHost, ReplayHost};
use tandem_proto::CheckResult;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "tandem",
    version,
    about = "Tandem security-posture agent (command line)"
)]
struct Cli {
    /// Where the agent keeps its state (default: the user's data dir + `tandem`).
    #[arg(long, global = true, env = "TANDEM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where the device token is kept: `keyring` (the OS keyring) or `file` (0600 file in the
    /// data dir, for headless machines and services). Default: as chosen at enrolment.
    #[arg(long, global = true, env = "TANDEM_CREDENTIAL_STORE")]
    credential_store: Option<CredentialStoreKind>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the checks and print the results.
    Check {
        #[arg(long)]
        json: bool,
        /// Evaluate a support bundle instead of the live machine.
        #[arg(long, value_name = "FILE")]
        replay: Option<PathBuf>,
    },
    /// Show enrolment, last sync, policy in force and the outbox.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Enrol this device with a Tandem server.
    Enroll {
        #[arg(long)]
        server: String,
        /// Secrets are base64url and may begin with `-`, so a leading hyphen is a value here.
        #[arg(
            long,
            env = "TANDEM_ENROLL_SECRET",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
        secret: String,
        /// Trust only this CA (PEM) for the server's certificate, from now on.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
    /// Run the checks and send a report now, then fetch the policy.
    Sync,
    /// Run the agent in the foreground until SIGTERM or Ctrl-C. With an updater key pinned
    /// and a binary it may replace, it also updates itself daily and restarts into the new
    /// build.
    Run,
    /// Install a newer release of this binary from the server, once its signature verifies
    /// with the pinned updater key; a refused update leaves the binary as it is.
    Update {
        /// Only say whether a newer release is offered.
        #[arg(long)]
        check: bool,
        /// The binary to replace (default: this one).
        #[arg(long, value_name = "PATH")]
        install_path: Option<PathBuf>,
        /// The updater public key (the `.pub` file's contents), instead of the built-in one.
        #[arg(long, env = "TANDEM_UPDATER_PUBKEY", hide_env_values = true)]
        pubkey: Option<String>,
    },
    /// Send a suspicious link or saved message (.eml) to IT and print the tracking id; with
    /// `--list`, show the reports sent with IT's verdict and reply.
    ReportPhishing {
        /// The link, as found in the message (do not open it).
        #[arg(long, required_unless_present_any = ["message", "list"], conflicts_with = "message")]
        url: Option<String>,
        /// List the reports sent from here, with IT's status and reply (asks the server first).
        #[arg(long, conflicts_with_all = ["url", "message", "note"])]
        list: bool,
        /// The message, saved from the mail program as an .eml file.
        #[arg(long, value_name = "FILE")]
        message: Option<PathBuf>,
        /// A note for IT: where it came from, whether anything was clicked.
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write a support bundle of everything the checks read.
    Diagnose {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Show what the agent reads of the user's situation now — idle time, screen lock,
    /// do-not-disturb, a full-screen window — which is what holds a reminder back.
    Context {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(default_log_filter(&cli.command))
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tandem: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tandem: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn default_log_filter(command: &Command) -> &'static str {
    match command {
        Command::Run => "info",
        _ => "warn",
    }
}

fn config(cli: &Cli) -> AgentConfig {
    let mut config = AgentConfig::from_env();
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if cli.credential_store.is_some() {
        config.credential_store = cli.credential_store;
    }
    config
}

async fn open(cli: &Cli) -> anyhow::Result<Agent> {
    let config = config(cli);
    let dir = config.data_dir.display().to_string();
    Agent::open(config)
        .await
        .with_context(|| format!("cannot open the agent state in {dir}"))
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Check { json, replay } => {
            let (device, results) = match replay {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let bundle = Bundle::from_json(&text)
                        .with_context(|| format!("cannot use {}", path.display()))?;
                    let ctx = bundle.context.clone().unwrap_or_default();
                    let device = tandem_checks::inventory::device_info(&bundle.os);
                    let host = ReplayHost::new(bundle);
                    (device, tandem_checks::run_checks(&host, &ctx).await)
                }
                None => {
                    let agent = open(&cli).await?;
                    let ctx = agent.check_context().await?;
                    let host = RealHost::new();
                    let device =
                        tandem_checks::inventory::device_info(tandem_checks::Host::os(&host));
                    (device, tandem_checks::run_checks(&host, &ctx).await)
                }
            };
            if *json {
                print_json(&serde_json::json!({ "device": device, "results": results }))?;
            } else {
                print_table(&results)?;
            }
        }
        Command::Status { json } => {
            let agent = open(&cli).await?;
            let state = agent.state();
            if *json {
                let mut value = serde_json::to_value(&state)?;
                if let Some(map) = value.as_object_mut() {
                    map.insert("enrolled".into(), state.enrollment.is_some().into());
                    map.insert("tray_state".into(), state.tray_state().as_str().into());
                    map.insert(
                        "data_dir".into(),
                        agent.data_dir().display().to_string().into(),
                    );
                }
                print_json(&value)?;
            } else {
                let mut out = std::io::stdout().lock();
                match &state.enrollment {
                    Some(e) => writeln!(
                        out,
                        "Enrolled:    yes, device {} at {}",
                        e.device_id, e.server_url
                    )?,
                    None => writeln!(out, "Enrolled:    no")?,
                }
                let never = || "never".to_owned();
                writeln!(
                    out,
                    "Last sync:   {}",
                    state.last_sync_at.map_or_else(never, |t| t.to_rfc3339())
                )?;
                if let Some(err) = &state.last_sync_error {
                    writeln!(out, "Sync error:  {err}")?;
                }
                let version = state
                    .policy
                    .version
                    .map_or_else(|| "built-in defaults".into(), |v| format!("version {v}"));
                writeln!(out, "Policy:      {version}")?;
                writeln!(out, "Outbox:      {} report(s) waiting", state.outbox_len)?;
                writeln!(out, "State:       {}", state.tray_state().as_str())?;
            }
        }
        Command::Enroll {
            server,
            secret,
            ca_file,
        } => {
            let agent = open(&cli).await?;
            let ca = ca_file
                .as_deref()
                .map(tandem_agent::bootstrap::read_ca_file);
            agent.pin_ca(ca.transpose()?.as_deref()).await?;
            let enrollment = agent
                .enroll(server, secret)
                .await
                .context("enrolment failed")?;
            println!(
                "enrolled as device {} at {}",
                enrollment.device_id, enrollment.server_url
            );
            // A first report and the policy right away, so IT sees the device at once. The
            // enrolment itself has succeeded even if this does not.
            if let Err(e) = agent.sync_now().await {
                eprintln!("tandem: enrolled, but the first sync failed: {e}");
            }
        }
        Command::Sync => {
            let agent = open(&cli).await?;
            let state = agent.sync_now().await.context("sync failed")?;
            println!(
                "synced: {} result(s) sent, policy {}, {} report(s) still queued",
                state.results.len(),
                state
                    .policy
                    .version
                    .map_or_else(|| "built-in".to_owned(), |v| format!("version {v}")),
                state.outbox_len
            );
        }
        Command::Update {
            check,
            install_path,
            pubkey,
        } => {
            let agent = open(&cli).await?;
            if *check {
                match agent.check_for_update().await? {
                    Some(u) => println!(
                        "update available: {} -> {}",
                        tandem_agent::AGENT_VERSION,
                        u.version
                    ),
                    None => println!("up to date ({})", tandem_agent::AGENT_VERSION),
                }
                return Ok(());
            }
            let key = pubkey
                .clone()
                .or(tandem_agent::update::BUILT_IN_PUBLIC_KEY.map(str::to_owned))
                .ok_or(tandem_agent::update::UpdateError::NoPublicKey)?;
            let path = match install_path {
                Some(p) => p.clone(),
                None => std::env::current_exe().context("cannot find this binary")?,
            };
            let outcome = agent.apply_update(&path, &key).await;
            if !matches!(outcome, Ok(tandem_agent::update::UpdateOutcome::UpToDate)) {
                // Tell IT now rather than at the next report.
                let delivered = async {
                    agent.queue_heartbeat().await?;
                    agent.flush_outbox().await
                }
                .await;
                if let Err(e) = delivered {
                    eprintln!("the outcome stays queued for the next report: {e}");
                }
            }
            match outcome? {
                tandem_agent::update::UpdateOutcome::UpToDate => {
                    println!("up to date ({})", tandem_agent::AGENT_VERSION)
                }
                tandem_agent::update::UpdateOutcome::Applied { version } => {
                    println!("updated to {version} at {}", path.display())
                }
            }
        }
        Command::Run => {
            let agent = open(&cli).await?;
            let shutdown = CancellationToken::new();
            let signal = shutdown.clone();
            tokio::spawn(async move {
                wait_for_termination().await;
                tracing::info!("stopping");
                signal.cancel();
            });
            tracing::info!(data_dir = %agent.data_dir().display(), "tandem agent running");
            tokio::spawn(show_nudges(agent.nudges()));
            tokio::spawn({
                let agent = agent.clone();
                async move { agent.bootstrap().await }
            });
            let updater = auto_update_config();
            let (_, updated) = tokio::join!(agent.run(shutdown.clone()), async {
                let version = match &updater {
                    Some(config) => agent.auto_update(config, &shutdown).await,
                    None => None,
                };
                if version.is_some() {
                    // Stop the loops and close the store before the new binary opens it.
                    shutdown.cancel();
                }
                version
            });
            if let (Some(version), Some(config)) = (updated, updater) {
                restart_into(&version, &config.install_path)?;
            }
        }
        Command::ReportPhishing {
            list: true, json, ..
        } => {
            let agent = open(&cli).await?;
            let sent = match agent.refresh_phishing_reports().await {
                Ok(sent) => sent,
                Err(e) => {
                    // Offline or not enrolled: what was last heard is still worth showing.
                    eprintln!("could not ask the server ({e}); showing what was last heard");
                    agent.phishing_reports().await?
                }
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&sent)?);
            } else {
                print!("{}", phishing_list(&sent));
            }
        }
        Command::ReportPhishing {
            url,
            message,
            note,
            json,
            ..
        } => {
            use tandem_agent::phishing::PhishingSubmission;
            let submission = match (url, message) {
                (Some(url), _) => PhishingSubmission::Url {
                    url: url.clone(),
                    note: note.clone(),
                },
                (None, Some(path)) => PhishingSubmission::Message {
                    file_name: path.file_name().map_or_else(
                        || "message.eml".into(),
                        |n| n.to_string_lossy().into_owned(),
                    ),
                    bytes: std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                    note: note.clone(),
                },
                (None, None) => anyhow::bail!("give --url or --message"),
            };
            let agent = open(&cli).await?;
            let receipt = agent
                .report_phishing(submission)
                .await
                .context("the report was not sent")?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&receipt)?);
            } else {
                println!(
                    "sent to IT: tracking id {} (received {})",
                    receipt.tracking_id,
                    receipt.received_at.to_rfc3339()
                );
            }
        }
        Command::Context { json } => {
            let signals = tandem_agent::context::current(&RealHost::new()).await;
            let ctx = signals.to_context();
            if *json {
                let value = serde_json::json!({
                    "idle_ms": signals.idle.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    "locked": signals.locked,
                    "do_not_disturb": signals.do_not_disturb,
                    "fullscreen": signals.fullscreen,
                    "away": ctx.away,
                    "utc_offset_s": ctx.utc_offset.local_minus_utc(),
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                let or_unknown = |v: Option<bool>| match v {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "cannot tell",
                };
                match signals.idle {
                    Some(idle) => println!("idle:            {} s", idle.as_secs()),
                    None => println!("idle:            cannot tell"),
                }
                println!("screen locked:   {}", or_unknown(signals.locked));
                println!("do not disturb:  {}", or_unknown(signals.do_not_disturb));
                println!("full screen:     {}", or_unknown(signals.fullscreen));
                let held = ctx.away || ctx.do_not_disturb || ctx.fullscreen;
                println!(
                    "reminders now:   {}",
                    if held {
                        "held back"
                    } else {
                        "allowed (within working hours)"
                    }
                );
            }
        }
        Command::Diagnose { out } => {
            let agent = open(&cli).await?;
            let ctx = agent.check_context().await?;
            let host = RecordingHost::new(RealHost::new());
            let results = tandem_checks::run_checks(&host, &ctx).await;
            // The user-context probes too: "why did I never get a reminder?" is a support
            // question like any other.
            tandem_agent::context::current(&host).await;
            let mut bundle = host.bundle();
            bundle.context = Some(ctx);
            let text = serde_json::to_string_pretty(&bundle)?;
            std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "wrote {} ({} checks, {} commands recorded)",
                out.display(),
                results.len(),
                bundle.commands.len()
            );
        }
    }
    Ok(())
}

/// Headless faces still remind: through the desktop notification service when the session
/// has one, else in the log.
/// The running agent's self-update settings: on when an updater key is pinned (built in,
/// or `TANDEM_UPDATER_PUBKEY`) and this process can replace its own binary; an install under
/// a read-only `/usr` is the package manager's to update. `TANDEM_UPDATE_INTERVAL_SECS`
/// changes the daily check.
fn auto_update_config() -> Option<tandem_agent::update::AutoUpdate> {
    use tandem_agent::update::{can_replace, AutoUpdate, BUILT_IN_PUBLIC_KEY};
    let public_key = std::env::var("TANDEM_UPDATER_PUBKEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        .or(BUILT_IN_PUBLIC_KEY.map(str::to_owned));
    let Some(public_key) = public_key else {
        tracing::debug!("self-update off: no updater key is pinned in this build");
        return None;
    };
    let install_path = match std::env::current_exe() {
        Ok(path) => path,
        Err(e) => {
            tracing::warn!(error = %e, "self-update off: cannot find this binary");
            return None;
        }
    };
    if !can_replace(&install_path) {
        tracing::info!(path = %install_path.display(),
            "self-update off: this process cannot replace its binary (a package-managed \
             install is updated by its package manager)");
        return None;
    }
    let every = std::env::var("TANDEM_UPDATE_INTERVAL_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(AutoUpdate::DEFAULT_EVERY, std::time::Duration::from_secs);
    Some(AutoUpdate {
        install_path,
        public_key,
        first_after: AutoUpdate::DEFAULT_FIRST_AFTER.min(every),
        every,
    })
}

/// Starts the newly installed binary in place of this process, with the same arguments:
/// `exec` on Unix, so the process id a service manager watches stays the same. Elsewhere
/// the process exits with an error and the service manager starts the new binary.
fn restart_into(version: &str, path: &std::path::Path) -> anyhow::Result<()> {
    tracing::info!(%version, path = %path.display(), "update installed; restarting into it");
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        let err = std::process::Command::new(path)
            .args(std::env::args_os().skip(1))
            .exec();
        Err(err).with_context(|| format!("cannot start the updated {}", path.display()))
    }
    #[cfg(not(unix))]
    {
        bail!("updated to {version}: restart the agent to run it")
    }
}

async fn show_nudges(mut nudges: tokio::sync::broadcast::Receiver<tandem_agent::Nudge>) {
    loop {
        let nudge = match nudges.recv().await {
            Ok(n) => n,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        tracing::info!(check = %nudge.decision.check_id, phase = ?nudge.decision.phase, "reminder: {}", nudge.body);
        let shown = tokio::task::spawn_blocking(move || {
            notify_rust::Notification::new()
                .appname("Tandem")
                .summary(&nudge.title)
                .body(&nudge.body)
                .show()
                .map(|_| ())
        })
        .await;
        if let Ok(Err(e)) = shown {
            tracing::debug!(error = %e, "no notification service; the reminder is in the log only");
        }
    }
}

async fn wait_for_termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn print_table(results: &[CheckResult]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let width = results
        .iter()
        .map(|r| r.id.title().len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(out, "{:<width$}  {:<14}  SUMMARY", "CHECK", "STATUS")?;
    for r in results {
        writeln!(
            out,
            "{:<width$}  {:<14}  {}",
            r.id.title(),
            r.status.as_str(),
            r.summary
        )?;
    }
    if results.is_empty() {
        bail!("no checks are enabled by the policy in force");
    }
    Ok(())
}

/// `tandem report-phishing --list`: one block per report, newest first. IT's reply is shown
/// with control characters escaped, so it cannot rewrite the terminal.
fn phishing_list(sent: &[tandem_proto::activity::PhishingReceipt]) -> String {
    use std::fmt::Write as _;
    if sent.is_empty() {
        return "no phishing reports sent from this device\n".into();
    }
    let mut out = String::new();
    for r in sent {
        let status = r.status.map_or("not asked yet", |s| s.as_str());
        let _ = writeln!(
            out,
            "{}  received {}  status {}",
            r.tracking_id,
            r.received_at.to_rfc3339(),
            status
        );
        if let Some(reply) = &r.reply {
            let clean: String = reply
                .chars()
                .flat_map(|c| {
                    if c.is_control() && c != '\n' {
                        c.escape_default().collect::<Vec<_>>()
                    } else {
                        vec![c]
                    }
                })
                .collect();
            let _ = writeln!(out, "  IT replied: {}", clean.replace('\n', "\n    "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrolment_secret_may_start_with_a_hyphen() {
        let cli = Cli::try_parse_from([
            "tandem",
            "enroll",
            "--server",
            "http://127.0.0.1:1",
            "--secret",
            "-JJwf37A",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Enroll { secret, .. } if secret == "-JJwf37A"));
    }
}
