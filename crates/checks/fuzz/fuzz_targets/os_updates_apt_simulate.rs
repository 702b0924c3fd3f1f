//! Fuzz target: `apt-get --simulate dist-upgrade` output must never panic the parser, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_checks::checks::os_updates;

fuzz_target!(|data: &[u8]| {
    // The probes hand parsers lossily decoded text, so the fuzzer does too.
    let text = &String::from_utf8_lossy(data);
    let _ = os_updates::apt::parse_simulate(text);
});
