//! Linux: D-Bus questions on the system bus (PackageKit, AccountsService) and the process's
//! uid.
//!
//! Each [`DbusQuery`] is answered with the JSON shape its variant documents, so a recording
//! of the answer replays exactly. Errors are sorted so that a probe can tell "this machine
//! has no such service" (fall back quietly) from "the service failed" (say so).

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use zbus::zvariant::OwnedObjectPath;
use zbus::{Connection, MatchRule, MessageStream, Proxy};

use crate::host::{DbusQuery, HostError};

/// The real uid of this process, from the owner of `/proc/self` (no `unsafe` libc call).
pub fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// A PackageKit transaction normally answers from cached metadata in a second or two, but it
/// queues behind any running transaction (an update being installed): give up before the
/// engine's per-check timeout so the probe can still fall back to the native tools.
const PACKAGEKIT_TIMEOUT: Duration = Duration::from_secs(25);
const ACCOUNTS_TIMEOUT: Duration = Duration::from_secs(10);

/// `PK_FILTER_ENUM_NONE` is 1 in `PkFilterEnum`; the D-Bus API takes a bitfield of
/// `1 << enum` (`pk_bitfield_value`), so "no filter" is `1 << 1`.
const PK_FILTER_NONE: u64 = 1 << 1;
/// `PK_EXIT_ENUM_SUCCESS` in `PkExitEnum` (unknown = 0, success = 1, failed = 2, …).
const PK_EXIT_SUCCESS: u32 = 1;

const PK_SERVICE: &str = "org.freedesktop.PackageKit";
const PK_TRANSACTION: &str = "org.freedesktop.PackageKit.Transaction";
const ACCOUNTS_SERVICE: &str = "org.freedesktop.Accounts";

/// Asks one of the known D-Bus questions on the system bus.
///
/// # Platform behaviour
/// Linux only. A missing system bus or an absent (not activatable) service answers
/// [`HostError::NotFound`]; a service that answers with an error gives [`HostError::Dbus`];
/// a service that does not answer in time gives [`HostError::Timeout`].
pub async fn dbus(query: &DbusQuery) -> Result<serde_json::Value, HostError> {
    let what = query.describe();
    let conn = Connection::system()
        .await
        .map_err(|e| map_error(&what, "the system D-Bus", e))?;
    match query {
        DbusQuery::PackageKitGetUpdates => {
            match tokio::time::timeout(PACKAGEKIT_TIMEOUT, packagekit_get_updates(&conn)).await {
                Ok(result) => result.map_err(|e| map_error(&what, PK_SERVICE, e)),
                Err(_) => Err(HostError::Timeout {
                    program: what,
                    seconds: PACKAGEKIT_TIMEOUT.as_secs(),
                }),
            }
        }
        DbusQuery::AccountsPasswordPolicy { uid } => {
            match tokio::time::timeout(ACCOUNTS_TIMEOUT, accounts_password_policy(&conn, *uid))
                .await
            {
                Ok(result) => result.map_err(|e| map_error(&what, ACCOUNTS_SERVICE, e)),
                Err(_) => Err(HostError::Timeout {
                    program: what,
                    seconds: ACCOUNTS_TIMEOUT.as_secs(),
                }),
            }
        }
    }
}

/// Sorts zbus errors into host errors. "No bus" and "no such service" are `NotFound`, so the
/// probes fall back without alarm; anything else keeps the service's own message.
fn map_error(what: &str, service: &str, e: zbus::Error) -> HostError {
    match &e {
        // No system bus on this machine (containers, minimal servers): nothing listens.
        zbus::Error::InputOutput(io) | zbus::Error::Connection(io, _)
            if matches!(
                io.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            HostError::NotFound {
                path: "the system D-Bus socket".to_owned(),
            }
        }
        zbus::Error::MethodError(name, _, _)
            if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
                || name.as_str() == "org.freedesktop.DBus.Error.NameHasNoOwner" =>
        {
            HostError::NotFound {
                path: service.to_owned(),
            }
        }
        zbus::Error::MethodError(name, message, _)
            if name.as_str() == "org.freedesktop.DBus.Error.AccessDenied" =>
        {
            HostError::PermissionDenied {
                path: format!(
                    "{service} ({})",
                    message.as_deref().unwrap_or("access denied")
                ),
            }
        }
        zbus::Error::MethodError(name, message, _) => HostError::Dbus {
            what: what.to_owned(),
            message: match message {
                Some(m) => format!("{name}: {m}"),
                None => name.to_string(),
            },
        },
        _ => HostError::Dbus {
            what: what.to_owned(),
            message: e.to_string(),
        },
    }
}

/// `CreateTransaction`, then `GetUpdates(none)` on it, collecting `Package` signals until
/// `Finished`. An `ErrorCode` signal turns into an error carrying PackageKit's details.
async fn packagekit_get_updates(conn: &Connection) -> Result<serde_json::Value, zbus::Error> {
    let pk = Proxy::new(conn, PK_SERVICE, "/org/freedesktop/PackageKit", PK_SERVICE).await?;
    let tid: OwnedObjectPath = pk.call("CreateTransaction", &()).await?;
    // One stream for every signal of this transaction keeps them in the order PackageKit
    // sent them: with one stream per signal, `Finished` could overtake queued `Package`s.
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(PK_SERVICE)?
        .path(tid.as_str())?
        .interface(PK_TRANSACTION)?
        .build();
    let mut signals = MessageStream::for_match_rule(rule, conn, Some(4096)).await?;
    let tx = Proxy::new(conn, PK_SERVICE, tid.as_str(), PK_TRANSACTION).await?;
    // Hints are advisory: a daemon that refuses them still answers GetUpdates, so a failure
    // here is not worth failing the query for. `interactive=false` keeps polkit from
    // prompting the user on our behalf.
    let hints = vec!["interactive=false", "background=true", "locale=C"];
    if let Err(e) = tx.call_method("SetHints", &(hints,)).await {
        tracing::debug!(error = %e, "PackageKit refused transaction hints");
    }
    tx.call_method("GetUpdates", &(PK_FILTER_NONE,)).await?;

    let mut packages = Vec::new();
    let mut error: Option<(u32, String)> = None;
    while let Some(message) = signals.next().await {
        let message = message?;
        let header = message.header();
        let Some(member) = header.member() else {
            continue;
        };
        match member.as_str() {
            "Package" => {
                let (info, package_id, summary): (u32, String, String) =
                    message.body().deserialize()?;
                packages.push(json!({"info": info, "package_id": package_id, "summary": summary}));
            }
            "ErrorCode" => {
                let (code, details): (u32, String) = message.body().deserialize()?;
                error = Some((code, details));
            }
            "Finished" => {
                let (exit, _runtime_ms): (u32, u32) = message.body().deserialize()?;
                if let Some((code, details)) = error {
                    return Err(zbus::Error::Failure(format!(
                        "PackageKit error {code}: {details}"
                    )));
                }
                if exit != PK_EXIT_SUCCESS {
                    return Err(zbus::Error::Failure(format!(
                        "PackageKit transaction ended with exit code {exit}"
                    )));
                }
                return Ok(serde_json::Value::Array(packages));
            }
            _ => {}
        }
    }
    Err(zbus::Error::Failure(
        "the PackageKit transaction vanished before it finished".into(),
    ))
}

/// `FindUserById(uid)`, then `User.GetPasswordExpirationPolicy()`. The six numbers are the
/// shadow fields (`sp_expire`, `sp_lstchg`, `sp_min`, `sp_max`, `sp_warn`, `sp_inact`) as
/// AccountsService hands them out. They are passed on unconverted: the unit of the two
/// dates differs between AccountsService versions (days, or seconds in 22.08), which the
/// pure parser sorts out.
async fn accounts_password_policy(
    conn: &Connection,
    uid: u32,
) -> Result<serde_json::Value, zbus::Error> {
    let accounts = Proxy::new(
        conn,
        ACCOUNTS_SERVICE,
        "/org/freedesktop/Accounts",
        ACCOUNTS_SERVICE,
    )
    .await?;
    let path: OwnedObjectPath = accounts.call("FindUserById", &(i64::from(uid),)).await?;
    let user = Proxy::new(
        conn,
        ACCOUNTS_SERVICE,
        path.as_str(),
        "org.freedesktop.Accounts.User",
    )
    .await?;
    let (expiration, last_change, min, max, warn, inactive): (i64, i64, i64, i64, i64, i64) =
        user.call("GetPasswordExpirationPolicy", &()).await?;
    Ok(json!({
        "expiration_time": expiration,
        "last_change_time": last_change,
        "min_days_between_changes": min,
        "max_days_between_changes": max,
        "days_to_warn": warn,
        "days_after_expiration_until_lock": inactive,
    }))
}
