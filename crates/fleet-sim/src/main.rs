//! `tandem-fleet-sim`: many simulated agents from one process, driving a real
//! `tandem-server` over HTTP the way agents do (enrol with a secret, post status reports,
//! hold the policy long-poll), for the server figures of BENCHMARKS.md.
//!
//! Modes, each printing figures for people and one `RESULT {json}` line for `cargo xtask
//! bench fleet`:
//! - `ingest`: reports at a fixed offered rate (or as fast as answered) for a while;
//!   achieved reports/s and p50/p99 latency.
//! - `longpoll`: N long-polls held; the server's memory per held connection.
//! - `push`: N agents long-polling, one policy PUT through the admin API; time until 50 %,
//!   99 % and all of them hold the new version.
//!
//! Every connection costs a file descriptor here and on the server: raise `ulimit -n`
//! before asking for thousands of agents.

use std::io::BufRead as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use reqwest::header::{self, HeaderValue};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tandem_proto::v1::{self, EnrollRequest, EnrollResponse, PolicyVersion};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "tandem-fleet-sim",
    about = "Simulated Tandem agents against a real server"
)]
struct Cli {
    /// The server's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    server: String,
    /// An enrolment secret (`tandem-server enroll-secret create`).
    #[arg(long, allow_hyphen_values = true)]
    secret: String,
    /// The server's process id: its CPU time and memory are read from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Spread connections over this many loopback source addresses (127.0.0.1, .2, …),
    /// so that tens of thousands of connections to one port do not run out of ephemeral
    /// ports. 1 binds nothing.
    #[arg(long, default_value_t = 1)]
    source_addrs: u8,
    /// First loopback source address used (127.0.0.<first>), so that several simulator
    /// processes use different ones.
    #[arg(long, default_value_t = 1)]
    first_source: u8,
    /// Enrolments in flight at once.
    #[arg(long, default_value_t = 32)]
    enroll_concurrency: usize,
    /// Prefix of machine ids and hostnames, so that several runs on one database differ.
    #[arg(long, default_value = "sim")]
    name: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Post status reports (11 checks each) and measure rate and latency.
    Ingest {
        #[arg(long, default_value_t = 2000)]
        agents: usize,
        /// Offered reports per second over all agents; 0: each agent posts its next report
        /// as soon as the last is answered (the server's ceiling).
        #[arg(long, default_value_t = 5000.0)]
        rate: f64,
        /// Seconds measured, after `--warmup` seconds that are not.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        #[arg(long, default_value_t = 5)]
        warmup: u64,
    },
    /// Hold N policy long-polls and measure the server's memory per held connection.
    Longpoll {
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        /// Long-polls the server must report parked before memory is read; several
        /// simulator processes together may hold more than this one's `--agents`.
        #[arg(long)]
        expect_parked: Option<usize>,
        /// Seconds to hold the long-polls after memory has been read.
        #[arg(long, default_value_t = 5)]
        hold: u64,
        /// New long-polls started per second (the server's accept queue is finite).
        #[arg(long, default_value_t = 2000)]
        ramp: u64,
        /// Print `READY` after enrolling and wait for a line on stdin before polling; at
        /// the end wait for stdin to close instead of `--hold` (for several processes).
        #[arg(long)]
        sync: bool,
    },
    /// N agents long-polling; one policy PUT; time until they hold the new version.
    Push {
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        /// An admin API token (`tandem-server token create --role admin`).
        #[arg(long)]
        admin_token: String,
        /// The group the enrolment secret enrols into.
        #[arg(long, default_value = "default")]
        group: String,
        #[arg(long, default_value_t = 2000)]
        ramp: u64,
        /// Seconds to wait for every agent to hold the new version.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

/// How long the server holds each long-poll; long enough that none ends by itself while
/// measuring, short enough that a lost one recovers.
const LONG_POLL_WAIT: u64 = 240;

/// How long to wait for the server to report every long-poll parked.
const PARK_DEADLINE: Duration = Duration::from_secs(300);

struct Agent {
    n: usize,
    token: String,
    client: reqwest::Client,
    /// The source address its connections use (`None`: the system's choice).
    local_addr: Option<IpAddr>,
}

struct Sim {
    base: String,
    /// One per source address; agents take them in turn.
    sources: Vec<Source>,
    server_pid: Option<u32>,
}

/// A loopback source address (`None`: the system's choice) and a client bound to it; the
/// report connections bind it themselves.
struct Source {
    client: reqwest::Client,
    local_addr: Option<IpAddr>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let mut sources = Vec::new();
    for k in 0..cli.source_addrs.max(1) {
        let local_addr = (cli.source_addrs > 1)
            .then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, cli.first_source.saturating_add(k))));
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(600))
            .tcp_nodelay(true)
            .local_address(local_addr)
            .build()
            .context("could not build an HTTP client")?;
        sources.push(Source { client, local_addr });
    }
    let sim = Arc::new(Sim {
        base: cli.server.trim_end_matches('/').to_owned(),
        sources,
        server_pid: cli.server_pid,
    });
    match cli.mode {
        Mode::Ingest {
            agents,
            rate,
            duration,
            warmup,
        } => {
            let fleet =
                enroll_all(&sim, &cli.secret, &cli.name, agents, cli.enroll_concurrency).await?;
            ingest(&sim, fleet, &cli.name, rate, duration, warmup).await
        }
        Mode::Longpoll {
            agents,
            expect_parked,
            hold,
            ramp,
            sync,
        } => {
            let fleet =
                enroll_all(&sim, &cli.secret, &cli.name, agents, cli.enroll_concurrency).await?;
            longpoll(
                &sim,
                fleet,
                expect_parked.unwrap_or(agents),
                hold,
                ramp,
                sync,
            )
            .await
        }
        Mode::Push {
            agents,
            admin_token,
            group,
            ramp,
            timeout,
        } => {
            let fleet =
                enroll_all(&sim, &cli.secret, &cli.name, agents, cli.enroll_concurrency).await?;
            push(&sim, fleet, &admin_token, &group, ramp, timeout).await
        }
    }
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's `tandem_policy_long_polls_parked` gauge.
    async fn parked(&self) -> Result<usize> {
        let text = self.sources[0]
            .client
            .get(self.url("/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix("tandem_policy_long_polls_parked "))
            .and_then(|v| v.trim().parse().ok())
            .context("the server's /metrics has no tandem_policy_long_polls_parked gauge")
    }

    /// Polls the gauge until at least `n` long-polls are parked.
    async fn wait_parked(&self, n: usize) -> Result<Duration> {
        let started = Instant::now();
        loop {
            if self.parked().await? >= n {
                return Ok(started.elapsed());
            }
            if started.elapsed() > PARK_DEADLINE {
                bail!(
                    "only {} of {n} long-polls parked after {PARK_DEADLINE:?}",
                    self.parked().await?
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Enrols `n` agents, at most `concurrency` at a time.
async fn enroll_all(
    sim: &Arc<Sim>,
    secret: &str,
    name: &str,
    n: usize,
    concurrency: usize,
) -> Result<Vec<Arc<Agent>>> {
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let (sim, secret, name) = (Arc::clone(sim), secret.to_owned(), name.to_owned());
        tasks.spawn(async move {
            let agent = enroll_one(&sim, &secret, &name, i).await;
            drop(permit);
            agent
        });
    }
    let mut fleet = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        fleet.push(Arc::new(joined??));
    }
    fleet.sort_by_key(|a| a.n);
    let took = started.elapsed().as_secs_f64();
    eprintln!(
        "enrolled {n} agents in {took:.1} s ({:.0}/s)",
        n as f64 / took.max(1e-9)
    );
    Ok(fleet)
}

async fn enroll_one(sim: &Sim, secret: &str, name: &str, i: usize) -> Result<Agent> {
    let source = &sim.sources[i % sim.sources.len()];
    let (client, local_addr) = (source.client.clone(), source.local_addr);
    let request = EnrollRequest {
        enroll_secret: secret.to_owned(),
        device: tandem_fleet_sim::device(name, i),
        user: tandem_fleet_sim::user(name, i),
    };
    for attempt in 0..20 {
        let response = client
            .post(sim.url(v1::PATH_ENROLL))
            .json(&request)
            .send()
            .await
            .with_context(|| format!("enrolment of agent {i}"))?;
        match response.status() {
            StatusCode::CREATED => {
                let enrolled: EnrollResponse = response.json().await?;
                return Ok(Agent {
                    n: i,
                    token: enrolled.device_token,
                    client,
                    local_addr,
                });
            }
            // The per-address enrolment limit: the bench turns it off, a person may not.
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE if attempt < 19 => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            status => bail!(
                "enrolment of agent {i} answered {status}: {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }
    bail!("enrolment of agent {i} kept being refused")
}

/// A report like the agent's (see [`tandem_fleet_sim::report`]), cut where the id and the
/// send time go, which are filled per request.
fn report_template(name: &str, i: usize) -> Result<ReportTemplate> {
    let report = tandem_fleet_sim::report(name, i, Utc::now());
    let mut value = serde_json::to_value(&report)?;
    value["report_id"] = json!(REPORT_ID_MARK);
    value["sent_at"] = json!(SENT_AT_MARK);
    ReportTemplate::split(&serde_json::to_string(&value)?)
}

const REPORT_ID_MARK: &str = "@@REPORT_ID@@";
const SENT_AT_MARK: &str = "@@SENT_AT@@";

/// A report body cut at its report id and send time, so that each report is the parts
/// concatenated around fresh values.
struct ReportTemplate {
    before_id: String,
    between: String,
    after_sent_at: String,
}

impl ReportTemplate {
    fn split(json: &str) -> Result<ReportTemplate> {
        let (before_id, rest) = json
            .split_once(REPORT_ID_MARK)
            .context("the template has no report id mark")?;
        let (between, after_sent_at) = rest
            .split_once(SENT_AT_MARK)
            .context("the template has no send time after the report id")?;
        Ok(ReportTemplate {
            before_id: before_id.to_owned(),
            between: between.to_owned(),
            after_sent_at: after_sent_at.to_owned(),
        })
    }

    fn len(&self) -> usize {
        self.before_id.len() + self.between.len() + self.after_sent_at.len()
    }
}

/// Where reports go: the server's socket address and the request line's parts, worked out
/// once for the whole fleet.
struct ReportServer {
    addr: SocketAddr,
    host: HeaderValue,
    path: String,
}

impl ReportServer {
    /// `base` is the server's base URL; reports need plain `http://` (the simulator drives
    /// a server on this machine, not one behind TLS).
    async fn resolve(base: &str) -> Result<ReportServer> {
        let rest = base
            .strip_prefix("http://")
            .with_context(|| format!("ingest needs an http:// server URL, not {base}"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let addr = tokio::net::lookup_host(authority)
            .await
            .with_context(|| format!("could not resolve {authority}"))?
            .next()
            .with_context(|| format!("{authority} has no address"))?;
        Ok(ReportServer {
            addr,
            host: HeaderValue::from_str(authority).context("the server's host")?,
            path: format!("{prefix}{}", v1::PATH_REPORTS),
        })
    }
}

/// One agent's report connection: HTTP/1.1 straight on hyper's client connection, kept
/// open between reports and made again after an error. Not reqwest's pooled client: the
/// simulator shares the machine's two cores with the server it measures, and reqwest's
/// pool, URL parsing and layers cost about twice the CPU per report (BENCHMARKS.md).
struct ReportConn {
    sender: Option<SendRequest<Full<Bytes>>>,
    authorization: HeaderValue,
    local_addr: Option<IpAddr>,
}

impl ReportConn {
    fn new(agent: &Agent) -> Result<ReportConn> {
        Ok(ReportConn {
            sender: None,
            authorization: HeaderValue::from_str(&format!("Bearer {}", agent.token))
                .context("the server sent a device token that is not a header value")?,
            local_addr: agent.local_addr,
        })
    }

    /// Posts one report and reads the whole answer; the answer's status.
    async fn post(&mut self, server: &ReportServer, body: String) -> Result<StatusCode> {
        let result = self.try_post(server, body).await;
        if result.is_err() {
            // Made again for the next report.
            self.sender = None;
        }
        result
    }

    async fn try_post(&mut self, server: &ReportServer, body: String) -> Result<StatusCode> {
        let sender = match &mut self.sender {
            Some(sender) => sender,
            None => self
                .sender
                .insert(connect(server.addr, self.local_addr).await?),
        };
        let request = hyper::Request::post(server.path.as_str())
            .header(header::HOST, server.host.clone())
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        // Read to its end, so the connection can carry the next report.
        response.into_body().collect().await?;
        Ok(status)
    }
}

/// An HTTP/1.1 connection to `addr`, from `local` when given.
async fn connect(addr: SocketAddr, local: Option<IpAddr>) -> Result<SendRequest<Full<Bytes>>> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = local {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // Drives the connection until it closes or `sender` is dropped.
    tokio::spawn(connection);
    Ok(sender)
}

/// Sorted-sample percentile in milliseconds.
fn percentile(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports these in USER_HZ, 100 on every architecture we run on.
    Some(ticks as f64 / 100.0)
}

/// (Rss kB, Private_Dirty kB) of a process.
fn memory_kb(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("Rss:")?, field("Private_Dirty:")?))
}

fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

#[derive(Default)]
struct IngestTally {
    ok: AtomicU64,
    overloaded: AtomicU64,
    errors: AtomicU64,
}

async fn ingest(
    sim: &Arc<Sim>,
    fleet: Vec<Arc<Agent>>,
    name: &str,
    rate: f64,
    duration: u64,
    warmup: u64,
) -> Result<()> {
    let n = fleet.len();
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(n as f64 / rate));
    let t0 = Instant::now() + Duration::from_millis(500);
    let measure_from = t0 + Duration::from_secs(warmup);
    let end = measure_from + Duration::from_secs(duration);
    let tally = Arc::new(IngestTally::default());
    let server = Arc::new(ReportServer::resolve(&sim.base).await?);
    let mut tasks = JoinSet::new();
    for agent in fleet {
        let template = report_template(name, agent.n)?;
        let mut conn = ReportConn::new(&agent)?;
        let (tally, server) = (Arc::clone(&tally), Arc::clone(&server));
        // Agents start spread over one interval, as a real fleet's timers are.
        let first = match interval {
            Some(every) => t0 + every.mul_f64(agent.n as f64 / n as f64),
            None => t0,
        };
        tasks.spawn(async move {
            // (service latency, latency from the scheduled send) in µs, measured window only.
            let mut samples: Vec<(u64, u64)> = Vec::new();
            let mut next = first;
            while next < end {
                tokio::time::sleep_until(next).await;
                // One allocation a report: the simulator shares the cores with the server,
                // so what it spends is taken from the figures it measures.
                let id = Uuid::now_v7();
                let mut id_buf = Uuid::encode_buffer();
                let id = id.hyphenated().encode_lower(&mut id_buf);
                let sent_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
                let mut body = String::with_capacity(template.len() + id.len() + sent_at.len());
                body.push_str(&template.before_id);
                body.push_str(id);
                body.push_str(&template.between);
                body.push_str(&sent_at);
                body.push_str(&template.after_sent_at);
                let sent = Instant::now();
                let outcome = match conn.post(&server, body).await {
                    Ok(StatusCode::ACCEPTED) => &tally.ok,
                    Ok(StatusCode::SERVICE_UNAVAILABLE) => &tally.overloaded,
                    Ok(_) | Err(_) => &tally.errors,
                };
                let done = Instant::now();
                // A report counts in the window it was sent in, however late its answer:
                // counted by when it was answered, the last few sent before the end were
                // left out, and a server answering every report at the offered rate
                // measured a little short of it.
                if sent >= measure_from && sent < end {
                    outcome.fetch_add(1, Ordering::Relaxed);
                    let service = (done - sent).as_micros() as u64;
                    let scheduled = (done - next).as_micros() as u64;
                    samples.push((service, scheduled));
                }
                next = match interval {
                    Some(every) => next + every,
                    None => done,
                };
            }
            samples
        });
    }
    let cpu_at = |pid: Option<u32>| pid.and_then(cpu_seconds);
    tokio::time::sleep_until(measure_from).await;
    let (server0, own0) = (cpu_at(sim.server_pid), cpu_at(Some(std::process::id())));
    tokio::time::sleep_until(end).await;
    let (server1, own1) = (cpu_at(sim.server_pid), cpu_at(Some(std::process::id())));
    let mut service = Vec::new();
    let mut scheduled = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        for (a, b) in joined? {
            service.push(a);
            scheduled.push(b);
        }
    }
    service.sort_unstable();
    scheduled.sort_unstable();
    let secs = duration as f64;
    let ok = tally.ok.load(Ordering::Relaxed);
    let cores = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some((b - a) / secs),
        _ => None,
    };
    let result = json!({
        "mode": "ingest",
        "agents": n,
        "offered_per_s": if rate > 0.0 { json!(rate) } else { json!("closed loop") },
        "duration_s": duration,
        "reports_per_s": ok as f64 / secs,
        "accepted": ok,
        "overloaded_503": tally.overloaded.load(Ordering::Relaxed),
        "errors": tally.errors.load(Ordering::Relaxed),
        "p50_ms": percentile(&service, 50.0),
        "p99_ms": percentile(&service, 99.0),
        "max_ms": percentile(&service, 100.0),
        "p99_from_schedule_ms": percentile(&scheduled, 99.0),
        "server_cpu_cores": cores(server0, server1),
        "sim_cpu_cores": cores(own0, own1),
    });
    eprintln!(
        "ingest: {:.0} reports/s accepted over {duration} s from {n} agents; p50 {:.1} ms, p99 {:.1} ms (p99 from schedule {:.1} ms)",
        result["reports_per_s"].as_f64().unwrap_or_default(),
        result["p50_ms"].as_f64().unwrap_or_default(),
        result["p99_ms"].as_f64().unwrap_or_default(),
        result["p99_from_schedule_ms"].as_f64().unwrap_or_default(),
    );
    println!("RESULT {result}");
    Ok(())
}

/// The etag in a response's `ETag` header, without quotes.
fn etag_of(response: &reqwest::Response) -> Option<String> {
    let value = response.headers().get(header::ETAG)?.to_str().ok()?;
    Some(value.trim_start_matches("W/").trim_matches('"').to_owned())
}

/// The agent's policy, fetched without waiting: its etag.
async fn current_etag(sim: &Sim, agent: &Agent) -> Result<String> {
    let response = agent
        .client
        .get(format!("{}?wait=0", sim.url(v1::PATH_POLICY)))
        .bearer_auth(&agent.token)
        .send()
        .await?;
    if response.status() != StatusCode::OK {
        bail!("policy fetch answered {}", response.status());
    }
    let etag = etag_of(&response).context("policy answer without an ETag")?;
    response.bytes().await?;
    Ok(etag)
}

/// What a long-polling agent saw: a new policy (with its version) at an instant.
type Delivery = (Instant, i64);

/// Long-polls forever from `etag` on, sending every new policy received to `deliveries`.
async fn poll_forever(
    sim: Arc<Sim>,
    agent: Arc<Agent>,
    mut etag: String,
    deliveries: mpsc::UnboundedSender<Delivery>,
    failures: Arc<AtomicUsize>,
) {
    let url = format!("{}?wait={LONG_POLL_WAIT}", sim.url(v1::PATH_POLICY));
    loop {
        let answer = agent
            .client
            .get(&url)
            .bearer_auth(&agent.token)
            .header(header::IF_NONE_MATCH, format!("\"{etag}\""))
            .timeout(Duration::from_secs(LONG_POLL_WAIT + 60))
            .send()
            .await;
        match answer {
            Ok(response) if response.status() == StatusCode::OK => {
                let new_etag = etag_of(&response);
                let body = response.json::<Value>().await;
                let at = Instant::now();
                let version = body
                    .ok()
                    .and_then(|b| b["version"].as_i64())
                    .unwrap_or_default();
                let _ = deliveries.send((at, version));
                if let Some(new_etag) = new_etag {
                    etag = new_etag;
                }
            }
            Ok(response) if response.status() == StatusCode::NOT_MODIFIED => {}
            _ => {
                failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Every agent's current etag, in fleet order, 256 fetches at a time.
async fn fetch_etags(sim: &Arc<Sim>, fleet: &[Arc<Agent>]) -> Result<Vec<(usize, String)>> {
    let mut etags = Vec::with_capacity(fleet.len());
    for chunk in fleet.chunks(256) {
        let mut fetches = JoinSet::new();
        for agent in chunk {
            let (sim, agent) = (Arc::clone(sim), Arc::clone(agent));
            fetches.spawn(async move { (agent.n, current_etag(&sim, &agent).await) });
        }
        while let Some(joined) = fetches.join_next().await {
            let (n, etag) = joined?;
            etags.push((n, etag?));
        }
    }
    etags.sort_by_key(|(n, _)| *n);
    Ok(etags)
}

/// Fetches every agent's etag, then starts their long-polls at `ramp` per second.
async fn start_polling(
    sim: &Arc<Sim>,
    fleet: &[Arc<Agent>],
    ramp: u64,
    deliveries: &mpsc::UnboundedSender<Delivery>,
    failures: &Arc<AtomicUsize>,
) -> Result<JoinSet<()>> {
    let etags = fetch_etags(sim, fleet).await?;
    Ok(spawn_pollers(sim, fleet, etags, ramp, deliveries, failures))
}

fn spawn_pollers(
    sim: &Arc<Sim>,
    fleet: &[Arc<Agent>],
    etags: Vec<(usize, String)>,
    ramp: u64,
    deliveries: &mpsc::UnboundedSender<Delivery>,
    failures: &Arc<AtomicUsize>,
) -> JoinSet<()> {
    let mut pollers = JoinSet::new();
    let started = Instant::now();
    let ramp = ramp.max(1) as f64;
    for (agent, (_, etag)) in fleet.iter().zip(etags) {
        let (sim, agent) = (Arc::clone(sim), Arc::clone(agent));
        let (deliveries, failures) = (deliveries.clone(), Arc::clone(failures));
        let at = started + Duration::from_secs_f64(agent.n as f64 / ramp);
        pollers.spawn(async move {
            tokio::time::sleep_until(at).await;
            poll_forever(sim, agent, etag, deliveries, failures).await;
        });
    }
    pollers
}

async fn longpoll(
    sim: &Arc<Sim>,
    fleet: Vec<Arc<Agent>>,
    expect: usize,
    hold: u64,
    ramp: u64,
    sync: bool,
) -> Result<()> {
    let n = fleet.len();
    let etags = fetch_etags(sim, &fleet).await?;
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let stdin_done = if sync {
        println!("READY");
        // The other simulator processes have enrolled too when the go line comes; the
        // end is stdin closing.
        let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut lines = std::io::stdin().lock().lines();
            let _ = lines.next();
            let _ = go_tx.send(());
            for _ in lines {}
            let _ = eof_tx.send(());
        });
        Some(eof_rx)
    } else {
        let _ = go_tx.send(());
        None
    };
    go_rx.await.context("stdin closed before the go line")?;

    let baseline = sim.server_pid.and_then(memory_kb);
    let fds0 = sim.server_pid.and_then(open_fds);
    let (deliveries, _received) = mpsc::unbounded_channel();
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let pollers = spawn_pollers(sim, &fleet, etags, ramp, &deliveries, &failures);
    let took = sim.wait_parked(expect).await?;
    // Let the allocator and the last connections settle before reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let parked = sim.parked().await?;
    let after = sim.server_pid.and_then(memory_kb);
    let fds1 = sim.server_pid.and_then(open_fds);
    let own = memory_kb(std::process::id());
    let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 * 1024.0 / parked.max(1) as f64),
        _ => None,
    };
    let result = json!({
        "mode": "longpoll",
        "agents_this_process": n,
        "parked": parked,
        "seconds_to_park": took.as_secs_f64(),
        "server_rss_kb_before": baseline.map(|m| m.0),
        "server_rss_kb_after": after.map(|m| m.0),
        "server_private_dirty_kb_before": baseline.map(|m| m.1),
        "server_private_dirty_kb_after": after.map(|m| m.1),
        "rss_bytes_per_connection": per(baseline.map(|m| m.0), after.map(|m| m.0)),
        "private_dirty_bytes_per_connection": per(baseline.map(|m| m.1), after.map(|m| m.1)),
        "server_fds_before": fds0,
        "server_fds_after": fds1,
        "sim_rss_kb": own.map(|m| m.0),
        "poll_failures": failures.load(Ordering::Relaxed),
        "ramp_s": started.elapsed().as_secs_f64(),
    });
    eprintln!("longpoll: {parked} long-polls parked; server {result}");
    println!("RESULT {result}");
    match stdin_done {
        Some(eof) => {
            let _ = eof.await;
        }
        None => tokio::time::sleep(Duration::from_secs(hold)).await,
    }
    drop(pollers);
    Ok(())
}

async fn push(
    sim: &Arc<Sim>,
    fleet: Vec<Arc<Agent>>,
    admin_token: &str,
    group: &str,
    ramp: u64,
    timeout: u64,
) -> Result<()> {
    let n = fleet.len();
    let (deliveries, mut received) = mpsc::unbounded_channel();
    let failures = Arc::new(AtomicUsize::new(0));
    let pollers = start_polling(sim, &fleet, ramp, &deliveries, &failures).await?;
    // The bench gives each measurement a fresh server process: every parked long-poll is ours.
    sim.wait_parked(n).await?;
    let parked = sim.parked().await?;

    let body =
        json!({"org": {"name": format!("Fleet simulator push {}", Utc::now().to_rfc3339())}});
    let put_at = Instant::now();
    let response = sim.sources[0]
        .client
        .put(sim.url(&format!("/api/v1/admin/groups/{group}/policy")))
        .bearer_auth(admin_token)
        .json(&body)
        .send()
        .await?;
    let put_took = put_at.elapsed();
    if !response.status().is_success() {
        bail!(
            "policy PUT answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    let pushed: PolicyVersion = response.json().await?;
    let mut arrivals: Vec<Duration> = Vec::with_capacity(n);
    let deadline = put_at + Duration::from_secs(timeout);
    while arrivals.len() < n {
        match tokio::time::timeout_at(deadline, received.recv()).await {
            Ok(Some((at, version))) if version >= pushed.version => {
                arrivals.push(at.saturating_duration_since(put_at));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    drop(pollers);
    arrivals.sort_unstable();
    let at_fraction = |f: f64| -> Option<f64> {
        let need = ((n as f64) * f).ceil() as usize;
        arrivals
            .get(need.max(1) - 1)
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    let result = json!({
        "mode": "push",
        "agents": n,
        "parked_at_put": parked,
        "version": pushed.version,
        "put_ms": put_took.as_secs_f64() * 1000.0,
        "first_ms": at_fraction(0.0),
        "p50_ms": at_fraction(0.5),
        "p99_ms": at_fraction(0.99),
        "all_ms": at_fraction(1.0),
        "received": arrivals.len(),
        "poll_failures": failures.load(Ordering::Relaxed),
    });
    eprintln!("push: {result}");
    println!("RESULT {result}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn the_report_server_is_taken_from_the_base_url() {
        let server = ReportServer::resolve("http://127.0.0.1:8080/tandem")
            .await
            .unwrap();
        assert_eq!(server.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(server.host, "127.0.0.1:8080");
        assert_eq!(server.path, format!("/tandem{}", v1::PATH_REPORTS));
        let bare = ReportServer::resolve("http://127.0.0.1:8080")
            .await
            .unwrap();
        assert_eq!(bare.path, v1::PATH_REPORTS);
        let tls = ReportServer::resolve("https://127.0.0.1:8443").await;
        assert!(tls.is_err(), "reports need plain HTTP");
    }

    /// One request as it arrived, read up to the end of its body.
    async fn read_request(stream: &mut tokio::net::TcpStream) -> String {
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed mid-request");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_lowercase();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .and_then(|n| n.trim().parse().ok())
                    .expect("a content-length");
                if body.len() >= length {
                    return String::from_utf8(buf).unwrap();
                }
            }
        }
    }

    #[tokio::test]
    async fn a_report_connection_posts_and_is_made_again_after_the_server_closes_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Each connection carries one request, then the server closes it.
        let answers = ["202 Accepted", "503 Service Unavailable"];
        let server_side = tokio::spawn(async move {
            let mut requests = Vec::new();
            for status in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                requests.push(read_request(&mut stream).await);
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
                stream.write_all(answer.as_bytes()).await.unwrap();
            }
            requests
        });
        let server = ReportServer {
            addr,
            host: HeaderValue::from_static("sim.test"),
            path: "/reports".into(),
        };
        let mut conn = ReportConn {
            sender: None,
            authorization: HeaderValue::from_static("Bearer t0ken"),
            local_addr: None,
        };
        let first = conn.post(&server, r#"{"n":1}"#.into()).await.unwrap();
        assert_eq!(first, StatusCode::ACCEPTED);
        // The closed connection may fail one attempt; the one after connects again.
        let mut second = None;
        for _ in 0..3 {
            if let Ok(status) = conn.post(&server, r#"{"n":2}"#.into()).await {
                second = Some(status);
                break;
            }
        }
        assert_eq!(second, Some(StatusCode::SERVICE_UNAVAILABLE));
        let requests = server_side.await.unwrap();
        for (request, n) in requests.iter().zip([1, 2]) {
            let lower = request.to_lowercase();
            assert!(lower.starts_with("post /reports http/1.1\r\n"), "{request}");
            assert!(lower.contains("\r\nhost: sim.test\r\n"), "{request}");
            assert!(
                lower.contains("\r\nauthorization: bearer t0ken\r\n"),
                "{request}"
            );
            assert!(
                lower.contains("\r\ncontent-type: application/json\r\n"),
                "{request}"
            );
            assert!(request.ends_with(&format!(r#"{{"n":{n}}}"#)), "{request}");
        }
    }
}
