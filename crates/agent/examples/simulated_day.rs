//! One simulated day of an enrolled agent, compressed into a few minutes, to show that its
//! memory does not grow: 24 hourly check runs, 96 quarter-hourly reports with their
//! deliveries, a policy poll and a nudge tick for every minute of the day. Private_Dirty and
//! RSS of this process are printed after every simulated hour.
//!
//! Run by `cargo xtask bench agent-day`, which starts the server and enrols first:
//! `simulated_day DATA_DIR` with the agent enrolled in `DATA_DIR` (file credential store).
//! The real probes run, so the check runs take as long as they do on this machine.

use std::path::PathBuf;
use std::time::Instant;

use tandem_agent::nudge::UserContext;
use tandem_agent::{Agent, AgentConfig, CredentialStoreKind};

/// (Private_Dirty kB, Rss kB) of this process.
fn memory_kb() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("Private_Dirty:"), field("Rss:"))
}

fn main() -> anyhow::Result<()> {
    let data_dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("usage: simulated_day DATA_DIR"))?;
    // The same runtime as `tandem run`.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut config = AgentConfig::new(data_dir);
        config.credential_store = Some(CredentialStoreKind::File);
        let agent = Agent::open(config).await?;
        let started = Instant::now();
        let mut first_hour = None;
        println!("hour  Private_Dirty kB  RSS kB");
        for hour in 0..24u32 {
            agent.check_now().await?;
            for minute in 0..60u32 {
                if minute % 15 == 0 {
                    agent.queue_heartbeat().await?;
                    agent.flush_outbox().await?;
                    agent.refresh_identity().await?;
                }
                agent.poll_policy(None).await?;
                agent.nudge_tick(&UserContext::default()).await?;
            }
            let (pd, rss) = memory_kb();
            println!("{hour:>4}  {pd:>15}  {rss:>6}");
            if hour == 0 {
                first_hour = Some((pd, rss));
            }
        }
        let (pd0, rss0) = first_hour.unwrap_or_default();
        let (pd, rss) = memory_kb();
        println!(
            "simulated day in {:.0} s: Private_Dirty {pd0} → {pd} kB ({:+} kB), RSS {rss0} → {rss} kB ({:+} kB) from hour 1 to hour 24",
            started.elapsed().as_secs_f64(),
            i128::from(pd) - i128::from(pd0),
            i128::from(rss) - i128::from(rss0),
        );
        Ok(())
    })
}
