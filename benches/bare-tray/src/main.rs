//! A Tauri 2 tray app with no logic: one icon, a menu with Quit, no window. It is the floor
//! `cargo xtask bench desktop-idle` measures `tandem-desktop` against (BENCHMARKS.md).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use tauri::menu::{Menu, MenuItem};
    use tauri::tray::TrayIconBuilder;

    let app = tauri::Builder::default()
        .setup(|app| {
            let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
            let menu = Menu::with_items(app, &[&quit])?;
            let icon = tauri::image::Image::from_bytes(include_bytes!(
                "../../../icons/tray/ok-on-light-64.png"
            ))?;
            TrayIconBuilder::with_id("bare")
                .icon(icon)
                .menu(&menu)
                .on_menu_event(|app, _| app.exit(0))
                .build(app)?;
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|_, event| {
        // A tray app outlives its (absent) windows, as tandem-desktop does.
        if let tauri::RunEvent::ExitRequested {
            code: None, api, ..
        } = event
        {
            api.prevent_exit();
        }
    });
    Ok(())
}
