//! Fuzz target: PackageKit `GetUpdates` answers (JSON as recorded) must never panic the parser, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_checks::checks::os_updates;

fuzz_target!(|data: &[u8]| {
    // The probes hand parsers lossily decoded text, so the fuzzer does too.
    let text = &String::from_utf8_lossy(data);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = os_updates::packagekit::parse_updates(&v);
    }
});
