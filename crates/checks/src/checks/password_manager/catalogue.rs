//! The password managers Tandem recognises, by the ids policy uses (`1password`,
//! `bitwarden`, `keepassxc`, `proton_pass`, `dashlane`), with where each leaves traces: its
//! browser extension ids and its desktop application's install locations per OS.
//!
//! Extension ids are the stores' ids (Chrome Web Store ids also apply to Brave, Chromium,
//! Vivaldi and to Edge when installed from the Chrome store; Edge Add-ons ids differ). A
//! missing location here can only make the check miss a manager (a warning the user can
//! dispute), never invent one.

/// One recognised password manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manager {
    pub id: &'static str,
    pub name: &'static str,
    /// Chrome Web Store and Edge Add-ons ids.
    pub chromium_ids: &'static [&'static str],
    /// Firefox add-on ids (`extensions.json` `addons[].id`).
    pub firefox_ids: &'static [&'static str],
    /// Absolute paths of the Linux application (packages, snaps).
    pub linux_paths: &'static [&'static str],
    /// Flatpak application ids (system-wide and per-user installs are both looked for).
    pub flatpak_ids: &'static [&'static str],
    /// macOS application bundles, in `/Applications` or `~/Applications`.
    pub macos_apps: &'static [&'static str],
    /// Windows per-machine install paths.
    pub windows_paths: &'static [&'static str],
    /// Windows per-user install paths, relative to the user's profile directory.
    pub windows_home_paths: &'static [&'static str],
}

pub const MANAGERS: &[Manager] = &[
    Manager {
        id: "1password",
        name: "1Password",
        chromium_ids: &[
            "aeblfdkhhhdcdjpifhhbdiojplfjncoa",
            "dppgmdbiimibapkepcbdbmkaabgiofem",
        ],
        firefox_ids: &["{d634138d-c276-4fc8-924b-40a0ea21d284}"],
        linux_paths: &["/usr/bin/1password", "/opt/1Password/1password"],
        flatpak_ids: &["com.onepassword.OnePassword"],
        macos_apps: &["1Password.app", "1Password 7.app"],
        windows_paths: &[r"C:\Program Files\1Password\app\8\1Password.exe"],
        windows_home_paths: &[r"AppData\Local\1Password\app\8\1Password.exe"],
    },
    Manager {
        id: "bitwarden",
        name: "Bitwarden",
        chromium_ids: &[
            "nngceckbapebfimnlniiiahkandclblb",
            "jbkfoedolllekgbhcbcoahefnbanhhlh",
        ],
        firefox_ids: &["{446900e4-71c2-419f-a6a7-df9c091e268b}"],
        linux_paths: &[
            "/usr/bin/bitwarden",
            "/opt/Bitwarden/bitwarden",
            "/snap/bin/bitwarden",
        ],
        flatpak_ids: &["com.bitwarden.desktop"],
        macos_apps: &["Bitwarden.app"],
        windows_paths: &[r"C:\Program Files\Bitwarden\Bitwarden.exe"],
        windows_home_paths: &[r"AppData\Local\Programs\Bitwarden\Bitwarden.exe"],
    },
    Manager {
        id: "keepassxc",
        name: "KeePassXC",
        chromium_ids: &[
            "oboonakemofpalcgghocfoadofidjkkk",
            "pdffhmdngciaglkoonimfcmckehcpafo",
        ],
        firefox_ids: &["keepassxc-browser@keepassxc.org"],
        linux_paths: &["/usr/bin/keepassxc", "/snap/bin/keepassxc"],
        flatpak_ids: &["org.keepassxc.KeePassXC"],
        macos_apps: &["KeePassXC.app"],
        windows_paths: &[r"C:\Program Files\KeePassXC\KeePassXC.exe"],
        windows_home_paths: &[],
    },
    Manager {
        id: "proton_pass",
        name: "Proton Pass",
        chromium_ids: &[
            "ghmbeldphafepmbegfdlkpapadhbakde",
            "gcllgfdnfnllodcaambdaknbipemelie",
        ],
        firefox_ids: &["78272b6fa58f4a1abaac99321d503a20@proton.me"],
        linux_paths: &["/usr/bin/proton-pass"],
        flatpak_ids: &["me.proton.Pass"],
        macos_apps: &["Proton Pass.app"],
        windows_paths: &[],
        windows_home_paths: &[r"AppData\Local\Programs\ProtonPass\ProtonPass.exe"],
    },
    Manager {
        id: "dashlane",
        name: "Dashlane",
        // Dashlane retired its desktop applications in 2022: the extension is the product.
        chromium_ids: &["fdjamakpfbbddfjaooikfcpapjohcfmg"],
        firefox_ids: &["jetpack-extension@dashlane.com"],
        linux_paths: &[],
        flatpak_ids: &[],
        macos_apps: &[],
        windows_paths: &[],
        windows_home_paths: &[],
    },
];

pub fn by_id(id: &str) -> Option<&'static Manager> {
    MANAGERS.iter().find(|m| m.id == id)
}

/// Chromium-family profile roots, relative to the home directory, per OS.
pub fn chromium_roots(family: &str) -> &'static [(&'static str, &'static str)] {
    match family {
        "macos" => &[
            ("Google Chrome", "Library/Application Support/Google/Chrome"),
            ("Chromium", "Library/Application Support/Chromium"),
            (
                "Microsoft Edge",
                "Library/Application Support/Microsoft Edge",
            ),
            (
                "Brave",
                "Library/Application Support/BraveSoftware/Brave-Browser",
            ),
            ("Vivaldi", "Library/Application Support/Vivaldi"),
        ],
        "windows" => &[
            ("Google Chrome", r"AppData\Local\Google\Chrome\User Data"),
            ("Chromium", r"AppData\Local\Chromium\User Data"),
            ("Microsoft Edge", r"AppData\Local\Microsoft\Edge\User Data"),
            (
                "Brave",
                r"AppData\Local\BraveSoftware\Brave-Browser\User Data",
            ),
            ("Vivaldi", r"AppData\Local\Vivaldi\User Data"),
        ],
        _ => &[
            ("Google Chrome", ".config/google-chrome"),
            (
                "Google Chrome (Flatpak)",
                ".var/app/com.google.Chrome/config/google-chrome",
            ),
            ("Chromium", ".config/chromium"),
            ("Chromium (snap)", "snap/chromium/common/chromium"),
            ("Microsoft Edge", ".config/microsoft-edge"),
            ("Brave", ".config/BraveSoftware/Brave-Browser"),
            ("Vivaldi", ".config/vivaldi"),
        ],
    }
}

/// Firefox profile roots (directories holding profile directories), relative to home.
pub fn firefox_roots(family: &str) -> &'static [&'static str] {
    match family {
        "macos" => &["Library/Application Support/Firefox/Profiles"],
        "windows" => &[r"AppData\Roaming\Mozilla\Firefox\Profiles"],
        _ => &[
            ".mozilla/firefox",
            "snap/firefox/common/.mozilla/firefox",
            ".var/app/org.mozilla.firefox/.mozilla/firefox",
        ],
    }
}

/// True for a Chromium profile directory name (`Default`, `Profile 1`, …).
pub fn is_chromium_profile(name: &str) -> bool {
    name == "Default" || name.starts_with("Profile ")
}
