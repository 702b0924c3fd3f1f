//! Fuzz target: `reg.exe query` output (Windows) must never panic the parser, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_checks::checks::software_sources;

fuzz_target!(|data: &[u8]| {
    // The probes hand parsers lossily decoded text, so the fuzzer does too.
    let text = &String::from_utf8_lossy(data);
    for v in software_sources::parse::parse_reg_query(text).values() {
        let _ = software_sources::parse::reg_dword(v);
    }
});
