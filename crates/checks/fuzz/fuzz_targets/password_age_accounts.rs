//! Fuzz target: AccountsService `GetPasswordExpirationPolicy` answers (JSON as recorded) must never panic the parser, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_checks::checks::password_age;

fuzz_target!(|data: &[u8]| {
    // The probes hand parsers lossily decoded text, so the fuzzer does too.
    let text = &String::from_utf8_lossy(data);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = password_age::parse::parse_accounts_policy(&v);
    }
});
