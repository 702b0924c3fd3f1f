//! Reading recorded outputs and comparing evaluated results with their snapshots.
//!
//! A snapshot is `test-data/<check>/<os>/<case>.expected.json` beside the recording.
//! `TANDEM_BLESS=1 cargo test -p tandem-checks` rewrites snapshots from the current code;
//! review the diff before committing.

use std::path::PathBuf;

pub fn test_data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("test-data")
        .join(rel)
}

/// A recorded output, as text.
pub fn read(rel: &str) -> String {
    let path = test_data(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Compares `value` (as pretty JSON) with the snapshot `rel` (a path ending in
/// `.expected.json`), or writes it when blessing.
pub fn assert_snapshot(rel: &str, value: &impl serde::Serialize) {
    let path = test_data(rel);
    let actual = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var_os("TANDEM_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "snapshot {} is missing: run with TANDEM_BLESS=1 to create it, then review it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "snapshot {} differs (run with TANDEM_BLESS=1 to accept the new output after review)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}

/// A fixed "now" for evaluations, so snapshots do not change with the calendar.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    "2026-11-28T12:00:00Z".parse().unwrap()
}
