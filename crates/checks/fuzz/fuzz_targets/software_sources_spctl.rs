//! Fuzz target: `spctl --status` output (macOS) must never panic the parser, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_checks::checks::software_sources;

fuzz_target!(|data: &[u8]| {
    // The probes hand parsers lossily decoded text, so the fuzzer does too.
    let text = &String::from_utf8_lossy(data);
    let _ = software_sources::parse::parse_spctl_status(text);
});
