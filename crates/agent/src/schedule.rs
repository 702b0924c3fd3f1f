//! When the machine around the agent changes under it: a wake from sleep or a network
//! change. Either one makes the last check results stale and the open policy connection
//! dead, so the runtime re-checks, flushes the outbox and reconnects.
//!
//! Both are noticed on the agent's one-minute tick, so an idle agent keeps no timer faster
//! than once a minute and needs no platform power or network API.
//!
//! # Platform behaviour
//! - Sleep: the tick compares how far the wall clock moved with how far it should have. On
//!   Linux and macOS the monotonic clock behind the tick stops while asleep, so the wall
//!   clock jumps ahead; on Windows the tick fires late. Both show as a gap.
//! - Network: the set of interface addresses (sysinfo, on every platform), reduced to a
//!   fingerprint. Loopback and IPv6 link-local addresses are left out: they never say
//!   anything about which network the machine is on.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A tick that arrives this much later (wall clock) than it should means the machine slept.
pub const SLEEP_GAP: Duration = Duration::from_secs(90);

/// Whether the wall clock moved `SLEEP_GAP` or more past what the tick expected.
pub fn slept_between(previous: DateTime<Utc>, now: DateTime<Utc>, expected: Duration) -> bool {
    let Ok(moved) = (now - previous).to_std() else {
        // The clock went backwards: a manual or NTP correction, not sleep.
        return false;
    };
    moved >= expected + SLEEP_GAP
}

/// The network the machine is on, as far as an agent can cheaply tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetFingerprint(BTreeSet<(String, IpAddr)>);

impl NetFingerprint {
    /// Builds a fingerprint from `(interface, address)` pairs.
    pub fn from_addrs<N: Into<String>>(
        addrs: impl IntoIterator<Item = (N, IpAddr)>,
    ) -> NetFingerprint {
        NetFingerprint(
            addrs
                .into_iter()
                .filter(|(_, ip)| !meaningless(ip))
                .map(|(name, ip)| (name.into(), ip))
                .collect(),
        )
    }

    /// The machine's current interface addresses; `None` when the OS would not list them
    /// (then nothing is taken to have changed).
    pub fn current() -> Option<NetFingerprint> {
        let networks = match sysinfo::Networks::new_with_refreshed_list() {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "could not list the network interfaces");
                return None;
            }
        };
        Some(NetFingerprint::from_addrs(networks.iter().flat_map(
            |(name, data)| {
                let name = name.to_string_lossy().into_owned();
                data.ip_networks()
                    .iter()
                    .map(move |net| (name.clone(), net.addr))
            },
        )))
    }

    /// True when no routable address is up: offline.
    pub fn is_offline(&self) -> bool {
        self.0.is_empty()
    }
}

fn meaningless(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// What one tick saw change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub woke: bool,
    pub network: bool,
}

impl Changes {
    pub fn any(self) -> bool {
        self.woke || self.network
    }
}

/// What the tick remembers between runs.
#[derive(Debug, Clone)]
pub struct Watch {
    last_tick: DateTime<Utc>,
    net: NetFingerprint,
}

impl Watch {
    pub fn new(now: DateTime<Utc>, net: Option<NetFingerprint>) -> Watch {
        Watch {
            last_tick: now,
            net: net.unwrap_or_default(),
        }
    }

    /// Compares this tick with the last one. A network that could not be read is taken as
    /// unchanged.
    pub fn tick(
        &mut self,
        now: DateTime<Utc>,
        expected: Duration,
        net: Option<NetFingerprint>,
    ) -> Changes {
        let woke = slept_between(self.last_tick, now, expected);
        self.last_tick = now;
        let network = match net {
            Some(net) if net != self.net => {
                self.net = net;
                true
            }
            _ => false,
        };
        Changes { woke, network }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_tick_on_time_or_a_little_late_is_not_sleep() {
        assert!(!slept_between(at(0), at(1), MINUTE));
        assert!(
            !slept_between(at(0), at(2), MINUTE),
            "a busy minute is not sleep"
        );
    }

    #[test]
    fn a_closed_lid_over_lunch_is_sleep() {
        assert!(slept_between(at(0), at(45), MINUTE));
    }

    #[test]
    fn a_clock_set_back_is_not_sleep() {
        assert!(!slept_between(at(30), at(0), MINUTE));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_and_link_local_do_not_count() {
        let fp = NetFingerprint::from_addrs([
            ("lo", ip("127.0.0.1")),
            ("lo", ip("::1")),
            ("wlan0", ip("fe80::1c2b:3aff:fe4d:5e6f")),
        ]);
        assert!(fp.is_offline());
    }

    #[test]
    fn a_new_address_is_a_network_change_and_the_same_one_is_not() {
        let home = || NetFingerprint::from_addrs([("wlan0", ip("192.168.1.20"))]);
        let office = NetFingerprint::from_addrs([("wlan0", ip("10.4.7.31"))]);
        let mut w = Watch::new(at(0), Some(home()));
        assert_eq!(w.tick(at(1), MINUTE, Some(home())), Changes::default());
        let changed = w.tick(at(2), MINUTE, Some(office));
        assert!(changed.network && !changed.woke);
        let same = NetFingerprint::from_addrs([("wlan0", ip("10.4.7.31"))]);
        assert!(!w.tick(at(3), MINUTE, Some(same)).any());
        assert!(
            !w.tick(at(4), MINUTE, None).any(),
            "unreadable is not a change"
        );
    }

    #[test]
    fn a_wake_in_another_place_is_both() {
        let home = NetFingerprint::from_addrs([("wlan0", ip("192.168.1.20"))]);
        let mut w = Watch::new(at(0), Some(home));
        let away = NetFingerprint::from_addrs([("eth0", ip("10.0.0.5"))]);
        let changed = w.tick(at(600), MINUTE, Some(away));
        assert_eq!(
            changed,
            Changes {
                woke: true,
                network: true
            }
        );
    }
}
