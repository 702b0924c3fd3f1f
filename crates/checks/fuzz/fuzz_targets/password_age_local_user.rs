//! Fuzz target: the `Get-LocalUser` script's JSON (Windows) must never panic the parser, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_checks::checks::password_age;

fuzz_target!(|data: &[u8]| {
    // The probes hand parsers lossily decoded text, so the fuzzer does too.
    let text = &String::from_utf8_lossy(data);
    let _ = password_age::parse::parse_local_user_json(text);
});
