//! Console sign-in: argon2id passwords, TOTP second factor (RFC 6238), session cookies and
//! CSRF tokens.
//!
//! The session cookie holds 256 random bits; the store keeps only their SHA-256. The CSRF
//! token of a session is an HMAC of a fixed label keyed by the session's cookie value, so it
//! needs no storage, differs per session, and cannot be computed by a page that cannot read
//! the (HttpOnly) cookie.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha1::Sha1;
use sha2::Sha256;

use super::ConsoleError;
use crate::api::SharedState;
use crate::keys::hash_secret;
use crate::store::console::ConsoleSession;
use crate::store::Role;

/// The session cookie. Scoped to the console's paths.
pub const SESSION_COOKIE: &str = "tandem_console";
/// A random value set on the sign-in page and echoed by its form (double submit), so that
/// another site cannot sign a browser in to an account of its choosing.
pub const LOGIN_COOKIE: &str = "tandem_console_login";
pub const SESSION_HOURS: i64 = 8;
/// Failed sign-ins (wrong password or code) before the account locks.
pub const MAX_FAILURES: u32 = 5;
pub const LOCK_MINUTES: i64 = 15;

const TOTP_PERIOD: i64 = 30;
const TOTP_DIGITS: u32 = 6;

/// An argon2id PHC string for `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends about as long as a real verification, so that an unknown username is not told
/// apart by the answer's timing.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default());
    let _ = verify_password(password, phc);
}

/// A new TOTP secret: 160 random bits (RFC 4226's recommendation), base32 without padding.
pub fn new_totp_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    data_encoding::BASE32_NOPAD.encode(&bytes)
}

/// The `otpauth://` URI authenticator apps take (as text or QR code).
pub fn provisioning_uri(username: &str, secret: &str) -> String {
    let label = super::percent_encode(&format!("Tandem:{username}"));
    format!(
        "otpauth://totp/{label}?secret={secret}&issuer=Tandem&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_PERIOD}"
    )
}

/// The TOTP code of `secret` at time step `step`, or `None` when the secret is not base32.
pub fn totp_code(secret: &str, step: i64) -> Option<u32> {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret.trim_end_matches('=').as_bytes())
        .ok()?;
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).ok()?;
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // RFC 4226 §5.3 dynamic truncation.
    let offset = usize::from(digest[19] & 0x0f);
    let word = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    Some(word % 10u32.pow(TOTP_DIGITS))
}

/// The time step a code entered at `now` matches, allowing one step of clock drift either
/// way; `None` when it matches none.
pub fn totp_verify(secret: &str, code: &str, now: DateTime<Utc>) -> Option<i64> {
    let code = code.trim();
    if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let entered: u32 = code.parse().ok()?;
    let step = now.timestamp().div_euclid(TOTP_PERIOD);
    [step - 1, step, step + 1]
        .into_iter()
        .find(|s| totp_code(secret, *s) == Some(entered))
}

/// A fresh session cookie value.
pub fn new_session_token() -> String {
    crate::keys::new_secret()
}

/// The CSRF token forms of this session carry.
pub fn csrf_token(session_token: &str) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(session_token.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(b"tandem-console-csrf");
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Compares a submitted CSRF token with the session's in constant time.
pub fn csrf_matches(session_token: &str, submitted: &str) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(session_token.as_bytes()) else {
        return false;
    };
    mac.update(b"tandem-console-csrf");
    let Ok(submitted) = URL_SAFE_NO_PAD.decode(submitted.as_bytes()) else {
        return false;
    };
    mac.verify_slice(&submitted).is_ok()
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a console cookie: Secure, HttpOnly, SameSite=Strict, console paths only.
pub fn set_cookie(name: &str, value: &str, max_age_seconds: i64) -> HeaderValue {
    let text = format!(
        "{name}={value}; Path=/console; Max-Age={max_age_seconds}; Secure; HttpOnly; SameSite=Strict"
    );
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The signed-in account of a console request, with what its forms need.
#[derive(Debug, Clone)]
pub struct Session {
    pub account: ConsoleSession,
    /// The cookie's value, kept to check CSRF tokens and to sign out.
    token: String,
}

impl Session {
    pub fn csrf(&self) -> String {
        csrf_token(&self.token)
    }

    pub fn csrf_matches(&self, submitted: &str) -> bool {
        csrf_matches(&self.token, submitted)
    }

    pub fn token_hash(&self) -> crate::store::SecretHash {
        hash_secret(&self.token)
    }

    pub fn is_admin(&self) -> bool {
        self.account.role == Role::Admin
    }

    /// How the audit log names this account.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.account.username)
    }
}

impl FromRequestParts<SharedState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, SESSION_COOKIE)
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .ok_or(ConsoleError::SignIn)?
            .to_owned();
        let account = state
            .store
            .console_session(&hash_secret(&token), state.clock.now())
            .await?
            .ok_or(ConsoleError::SignIn)?;
        Ok(Session { account, token })
    }
}

/// What a sign-in refused for its address's rate says.
pub const TOO_MANY_SIGN_INS: &str =
    "Too many sign-in attempts from this address; wait a minute and try again.";

/// Spends one of the sign-in attempts `peer` has (`SharedState::sign_in_limiter`); `false`
/// once they are used up. Without a limiter or a known address, always `true`.
pub fn sign_in_allowed(state: &crate::api::SharedState, peer: Option<std::net::IpAddr>) -> bool {
    match (&state.sign_in_limiter, peer) {
        (Some(limiter), Some(ip)) => crate::api::spend(limiter, &ip, 10_000).is_ok(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc_6238_test_vectors() {
        // RFC 6238 appendix B, SHA-1, secret "12345678901234567890", 8 digits there; the
        // last six digits are the 6-digit codes.
        let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
        for (time, code8) in [
            (59, 94287082u32),
            (1111111109, 7081804),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(
                totp_code(&secret, time / 30),
                Some(code8 % 1_000_000),
                "{time}"
            );
        }
    }

    #[test]
    fn a_code_matches_its_step_and_its_neighbours_only() {
        let secret = new_totp_secret();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let step = now.timestamp() / 30;
        let code = format!("{:06}", totp_code(&secret, step).unwrap());
        assert_eq!(totp_verify(&secret, &code, now), Some(step));
        let later = now + chrono::Duration::seconds(30);
        assert_eq!(totp_verify(&secret, &code, later), Some(step));
        let much_later = now + chrono::Duration::seconds(120);
        assert_eq!(totp_verify(&secret, &code, much_later), None);
        assert_eq!(totp_verify(&secret, "12345", now), None);
        assert_eq!(totp_verify(&secret, "abcdef", now), None);
    }

    #[test]
    fn passwords_and_csrf_tokens_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong", &phc));
        let token = new_session_token();
        assert!(csrf_matches(&token, &csrf_token(&token)));
        assert!(!csrf_matches(&token, &csrf_token(&new_session_token())));
        assert!(!csrf_matches(&token, ""));
    }
}
