//! Whether the desktop has somewhere to put a tray icon. GNOME without the AppIndicator
//! extension has none, and an icon added there is simply never seen; the shell then says so
//! once and relies on notifications and the window.
//!
//! # Platform behaviour
//! Linux: a tray exists when a StatusNotifierWatcher owns its name on the session bus (KDE,
//! GNOME with AppIndicator, most panels) or an XEmbed tray manager owns the X selection
//! `_NET_SYSTEM_TRAY_S<screen>` (older panels, trayer); libappindicator uses the first and
//! falls back to the second. Windows and macOS always have a notification area / menu bar.

#[cfg(target_os = "linux")]
mod linux {
    use x11rb::protocol::xproto::ConnectionExt as _;

    const WATCHER: &str = "org.kde.StatusNotifierWatcher";

    async fn has_status_notifier_watcher() -> bool {
        let Ok(bus) = zbus::Connection::session().await else {
            return false;
        };
        let Ok(dbus) = zbus::fdo::DBusProxy::new(&bus).await else {
            return false;
        };
        let Ok(name) = zbus::names::BusName::try_from(WATCHER) else {
            return false;
        };
        dbus.name_has_owner(name).await.unwrap_or(false)
    }

    fn has_xembed_tray() -> bool {
        let Ok((conn, screen)) = x11rb::connect(None) else {
            return false;
        };
        let selection = format!("_NET_SYSTEM_TRAY_S{screen}");
        let owner = conn
            .intern_atom(true, selection.as_bytes())
            .ok()
            .and_then(|cookie| cookie.reply().ok())
            .filter(|reply| reply.atom != x11rb::NONE)
            .and_then(|reply| conn.get_selection_owner(reply.atom).ok())
            .and_then(|cookie| cookie.reply().ok())
            .map(|reply| reply.owner);
        matches!(owner, Some(window) if window != x11rb::NONE)
    }

    pub async fn available() -> bool {
        has_status_notifier_watcher().await || has_xembed_tray()
    }
}

/// Whether a tray icon would be visible.
#[cfg(target_os = "linux")]
pub async fn available() -> bool {
    linux::available().await
}

/// Whether a tray icon would be visible.
#[cfg(not(target_os = "linux"))]
pub async fn available() -> bool {
    true
}
