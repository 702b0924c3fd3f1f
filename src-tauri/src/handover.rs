//! The second launch's quick path: when Tandem already runs, hand the arguments to it over
//! the session bus and exit, before starting GTK, the event loop and the plugins.
//!
//! The single-instance plugin does the same hand-over, but only from inside `Builder::build`,
//! after the toolkit has connected to the display and every plugin has been set up; that is
//! a visible part of a window opened from the applications menu. This path speaks the
//! plugin's own D-Bus interface, so the running instance cannot tell the two apart, and
//! anything unexpected (no bus, no running instance, a refused call) falls back to the
//! plugin.
//!
//! # Platform behaviour
//! Linux only (the plugin uses D-Bus there); elsewhere the plugin alone hands over.

/// The bundle identifier (`tauri.conf.json`), which names the plugin's bus name and path.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const IDENTIFIER: &str = "dev.tandem.agent";

/// The plugin's well-known bus name for `identifier`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn bus_name(identifier: &str) -> String {
    format!("{identifier}.SingleInstance")
}

/// The plugin's object path for `identifier`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn object_path(identifier: &str) -> String {
    format!(
        "/{}",
        bus_name(identifier).replace('.', "/").replace('-', "_")
    )
}

/// Hands this launch's arguments to a running instance; true when it took them and this
/// process should exit.
#[cfg(target_os = "linux")]
pub fn to_running_instance() -> bool {
    let argv: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let cwd = std::env::current_dir()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let handed = tauri::async_runtime::block_on(async move {
        let bus = zbus::Connection::session().await?;
        let dbus = zbus::fdo::DBusProxy::new(&bus).await?;
        let name = zbus::names::BusName::try_from(bus_name(IDENTIFIER))?;
        // No owner: this is the first instance (or the bus is not ours to judge); the
        // plugin decides as usual.
        if !dbus.name_has_owner(name.clone()).await? {
            return Ok::<bool, zbus::Error>(false);
        }
        bus.call_method(
            Some(name),
            object_path(IDENTIFIER).as_str(),
            Some("org.SingleInstance.DBus"),
            "ExecuteCallback",
            &(argv, cwd),
        )
        .await?;
        Ok(true)
    });
    match handed {
        Ok(handed) => handed,
        Err(err) => {
            tracing::debug!("quick hand-over not taken, the plugin decides: {err}");
            false
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn to_running_instance() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_the_plugins_for_this_apps_identifier() {
        let config: serde_json::Value =
            serde_json::from_str(include_str!("../tauri.conf.json")).unwrap();
        assert_eq!(config["identifier"], IDENTIFIER);
        assert_eq!(bus_name(IDENTIFIER), "dev.tandem.agent.SingleInstance");
        assert_eq!(object_path(IDENTIFIER), "/dev/tandem/agent/SingleInstance");
    }
}
