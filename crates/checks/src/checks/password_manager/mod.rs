//! `password_manager`: strong, unique passwords are the user's part, and a password manager
//! installed and in use is the evidence peers look for — its desktop application, or its
//! extension in the user's browser profiles. The managers recognised come from policy
//! (`password_manager.recognised`), with a built-in default.
//!
//! # Platform behaviour
//! Applications: Linux package, snap and Flatpak (system and per-user) locations; macOS
//! `/Applications` and `~/Applications`; Windows Program Files and per-user install
//! directories. Extensions: the `Extensions` directory of every Chrome, Chromium, Edge,
//! Brave and Vivaldi profile under the user's home, and Firefox profiles' `extensions.json`
//! (active add-ons only). Chromium keeps a disabled extension's directory, so a Chromium
//! extension counts as installed, not necessarily enabled.

pub mod catalogue;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::{CheckId, Owner, Remediation, RemediationAction, Status};

use crate::engine::{Check, CheckContext, Outcome};
use crate::host::{Host, HostError};
use catalogue::Manager;

pub struct PasswordManager;

/// Programs this check's probes run: none, it only looks at files.
pub const PROGRAMS: &[&str] = &[];

/// One Chromium-family profile as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChromiumProfile {
    pub browser: String,
    pub profile: String,
    pub extension_ids: Result<Vec<String>, HostError>,
}

/// One Firefox profile's `extensions.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct FirefoxProfile {
    pub profile: String,
    pub extensions_json: Result<String, HostError>,
}

/// Everything the probe read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Probe {
    pub family: String,
    /// Application paths looked for, with whether each exists.
    pub apps: Vec<(String, bool)>,
    pub chromium: Vec<ChromiumProfile>,
    pub firefox: Vec<FirefoxProfile>,
    /// False when the user's home directory is unknown (extensions could not be looked for).
    pub home_known: bool,
}

/// One Firefox add-on as `extensions.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirefoxAddon {
    pub id: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("extensions.json is not readable: {0}")]
pub struct FirefoxParseError(pub String);

/// Reads Firefox's `extensions.json`: `{"addons": [{"id": s, "active": b, …}, …]}`.
pub fn parse_firefox_extensions(text: &str) -> Result<Vec<FirefoxAddon>, FirefoxParseError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| FirefoxParseError(e.to_string()))?;
    let addons = value
        .get("addons")
        .and_then(|a| a.as_array())
        .ok_or_else(|| FirefoxParseError("no addons list".into()))?;
    Ok(addons
        .iter()
        .filter_map(|a| {
            let id = a.get("id")?.as_str()?.to_owned();
            // `active` is false for disabled add-ons and for ones that failed to load.
            let active = a
                .get("active")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            Some(FirefoxAddon { id, active })
        })
        .collect())
}

/// Where one recognised manager was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sighting {
    pub manager: &'static str,
    pub name: &'static str,
    /// `app`, or the browser and profile holding the extension.
    pub r#where: String,
}

fn recognised(ids: &[String]) -> (Vec<&'static Manager>, Vec<String>) {
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for id in ids {
        match catalogue::by_id(id) {
            Some(m) => known.push(m),
            None => unknown.push(id.clone()),
        }
    }
    (known, unknown)
}

/// The application paths to look for, per OS, for the given managers.
pub fn app_paths(family: &str, home: Option<&str>, managers: &[&Manager]) -> Vec<String> {
    let mut paths = Vec::new();
    for m in managers {
        match family {
            "macos" => {
                for app in m.macos_apps {
                    paths.push(format!("/Applications/{app}"));
                    if let Some(h) = home {
                        paths.push(format!("{h}/Applications/{app}"));
                    }
                }
            }
            "windows" => {
                paths.extend(m.windows_paths.iter().map(|p| (*p).to_owned()));
                if let Some(h) = home {
                    paths.extend(m.windows_home_paths.iter().map(|p| format!(r"{h}\{p}")));
                }
            }
            _ => {
                paths.extend(m.linux_paths.iter().map(|p| (*p).to_owned()));
                for id in m.flatpak_ids {
                    paths.push(format!("/var/lib/flatpak/app/{id}"));
                    if let Some(h) = home {
                        paths.push(format!("{h}/.local/share/flatpak/app/{id}"));
                    }
                }
            }
        }
    }
    paths
}

fn manager_for_path<'a>(family: &str, path: &str, managers: &[&'a Manager]) -> Option<&'a Manager> {
    managers.iter().copied().find(|m| {
        let ends = |s: &str| path.ends_with(s);
        match family {
            "macos" => m.macos_apps.iter().any(|a| ends(&format!("/{a}"))),
            "windows" => {
                m.windows_paths.contains(&path)
                    || m.windows_home_paths.iter().any(|p| ends(&format!(r"\{p}")))
            }
            _ => {
                m.linux_paths.contains(&path)
                    || m.flatpak_ids.iter().any(|id| ends(&format!("/app/{id}")))
            }
        }
    })
}

/// Judges what the probe read against the recognised managers. Pure.
pub fn evaluate(probe: &Probe, ctx: &CheckContext) -> Outcome {
    let (managers, unknown_ids) = recognised(&ctx.policy.checks.password_manager.recognised);
    if managers.is_empty() {
        let mut o = Outcome::unknown("policy recognises no password manager this agent knows");
        o.status = Status::NotApplicable;
        o.summary = "No password managers are recognised by policy".into();
        o.details = json!({"unrecognised_ids": unknown_ids});
        return o;
    }
    let mut seen: Vec<Sighting> = Vec::new();
    let mut evidence: Vec<Evidence> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for (path, exists) in &probe.apps {
        if !exists {
            continue;
        }
        if let Some(m) = manager_for_path(&probe.family, path, &managers) {
            seen.push(Sighting {
                manager: m.id,
                name: m.name,
                r#where: "desktop app".into(),
            });
            evidence.push(Evidence {
                source: path.clone(),
                excerpt: "present".into(),
            });
        }
    }
    for p in &probe.chromium {
        match &p.extension_ids {
            Ok(ids) => {
                for m in &managers {
                    if let Some(id) = ids.iter().find(|id| m.chromium_ids.contains(&id.as_str())) {
                        seen.push(Sighting {
                            manager: m.id,
                            name: m.name,
                            r#where: format!("{} ({})", p.browser, p.profile),
                        });
                        evidence.push(Evidence {
                            source: format!("{} {} extensions", p.browser, p.profile),
                            excerpt: id.clone(),
                        });
                    }
                }
            }
            Err(HostError::NotFound { .. }) => {}
            Err(e) => notes.push(format!("{} ({}): {e}", p.browser, p.profile)),
        }
    }
    for p in &probe.firefox {
        match p.extensions_json.as_deref().map(parse_firefox_extensions) {
            Ok(Ok(addons)) => {
                for m in &managers {
                    if let Some(a) = addons
                        .iter()
                        .find(|a| a.active && m.firefox_ids.contains(&a.id.as_str()))
                    {
                        seen.push(Sighting {
                            manager: m.id,
                            name: m.name,
                            r#where: format!("Firefox ({})", p.profile),
                        });
                        evidence.push(Evidence {
                            source: format!("Firefox {} extensions.json", p.profile),
                            excerpt: a.id.clone(),
                        });
                    }
                }
            }
            Ok(Err(e)) => notes.push(format!("Firefox ({}): {e}", p.profile)),
            Err(HostError::NotFound { .. }) => {}
            Err(e) => notes.push(format!("Firefox ({}): {e}", p.profile)),
        }
    }
    let mut names: Vec<&str> = seen.iter().map(|s| s.name).collect();
    names.dedup();
    names.sort_unstable();
    names.dedup();
    let details = json!({
        "found": seen,
        "recognised": managers.iter().map(|m| m.id).collect::<Vec<_>>(),
        "unrecognised_ids": unknown_ids,
        "browser_profiles_checked": probe.chromium.iter().filter(|p| p.extension_ids.is_ok()).count() + probe.firefox.iter().filter(|p| p.extensions_json.is_ok()).count(),
        "notes": notes,
    });
    if !names.is_empty() {
        return Outcome {
            status: Status::Pass,
            summary: format!("Password manager in use: {}", names.join(", ")),
            reason: None,
            details,
            evidence,
            remediation: Remediation::default(),
            default_owner: Owner::User,
        };
    }
    if !probe.home_known {
        let mut o = Outcome::unknown(
            "the user's home directory is not known, so browser extensions could not be looked for",
        );
        o.details = details;
        return o;
    }
    let choices = managers
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ");
    Outcome {
        status: Status::Warn,
        summary: "No password manager found on this computer".into(),
        reason: None,
        details,
        evidence,
        remediation: Remediation {
            steps: vec![
                format!("Install a password manager your organisation supports ({choices}) and its browser extension."),
                "Let it create a new, unique password for each account, starting with your work accounts.".into(),
            ],
            action: ctx.policy.org.helpdesk_url.clone().map(|url| RemediationAction::OpenUrl { url }),
        },
        default_owner: Owner::User,
    }
}

fn join(family: &str, base: &str, rel: &str) -> String {
    if family == "windows" {
        format!(r"{base}\{rel}")
    } else {
        format!("{base}/{rel}")
    }
}

/// Reads application paths and browser profiles on a live or recorded host.
///
/// # Platform behaviour
/// Paths and profile roots are chosen by `host.os().family`; see the module documentation.
pub async fn probe(host: &dyn Host, ctx: &CheckContext) -> Probe {
    let family = host.os().family.clone();
    let home = host.os().home.clone().filter(|h| !h.is_empty());
    let (managers, _) = recognised(&ctx.policy.checks.password_manager.recognised);
    let mut out = Probe {
        family: family.clone(),
        home_known: home.is_some(),
        ..Probe::default()
    };
    for path in app_paths(&family, home.as_deref(), &managers) {
        let exists = host.modified(&path).await.is_ok();
        out.apps.push((path, exists));
    }
    let Some(home) = home else { return out };
    for (browser, rel) in catalogue::chromium_roots(&family) {
        let root = join(&family, &home, rel);
        let Ok(entries) = host.list_dir(&root).await else {
            continue;
        };
        for profile in entries
            .into_iter()
            .filter(|e| catalogue::is_chromium_profile(e))
        {
            let dir = join(&family, &join(&family, &root, &profile), "Extensions");
            let extension_ids = host.list_dir(&dir).await;
            out.chromium.push(ChromiumProfile {
                browser: (*browser).to_owned(),
                profile,
                extension_ids,
            });
        }
    }
    for rel in catalogue::firefox_roots(&family) {
        let root = join(&family, &home, rel);
        let Ok(entries) = host.list_dir(&root).await else {
            continue;
        };
        // Profile directories are named `<salt>.<name>`; skip the ini files and the crash
        // and telemetry directories beside them.
        for profile in entries
            .into_iter()
            .filter(|e| e.contains('.') && !e.ends_with(".ini"))
        {
            let file = join(&family, &join(&family, &root, &profile), "extensions.json");
            let extensions_json = host
                .read_file(&file)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            out.firefox.push(FirefoxProfile {
                profile,
                extensions_json,
            });
        }
    }
    out
}

#[async_trait]
impl Check for PasswordManager {
    fn id(&self) -> CheckId {
        CheckId::PasswordManager
    }

    async fn run(&self, host: &dyn Host, ctx: &CheckContext) -> Outcome {
        let p = probe(host, ctx).await;
        evaluate(&p, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firefox_addons_active_only_and_errors() {
        let a = parse_firefox_extensions(r#"{"schemaVersion":36,"addons":[{"id":"a@b","active":true},{"id":"c@d","active":false},{"nope":1}]}"#).unwrap();
        assert_eq!(a.len(), 2);
        assert!(a[0].active && !a[1].active);
        assert!(parse_firefox_extensions("{}").is_err());
        assert!(parse_firefox_extensions("not json").is_err());
    }
}
