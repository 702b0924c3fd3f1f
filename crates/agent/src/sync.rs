//! The HTTP client for the v1 agent protocol: enrol, deliver reports, long-poll policy.

use std::time::Duration;

use reqwest::StatusCode;
use tandem_proto::v1::{
    self, EnrollRequest, EnrollResponse, IdentityFacts, Problem, ReportAck, SignedPolicy,
};
use url::Url;

use crate::credentials::DeviceToken;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("invalid server URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach the server: {0}")]
    Network(String),
    #[error("the server no longer knows this device; enrol it again with `tandem enroll`")]
    EnrollAgain,
    #[error("the server refused the enrolment secret: {0}")]
    BadSecret(String),
    #[error("the server answered {status}: {detail}")]
    Server { status: u16, detail: String },
    #[error("the server sent a malformed answer: {0}")]
    Malformed(String),
    #[error("the pinned CA is not usable: {0}")]
    BadCa(String),
}

impl SyncError {
    /// Errors after which retrying later can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Network(_) => true,
            SyncError::Server { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// The outcome of one policy request.
#[derive(Debug)]
pub enum PolicyPoll {
    Changed(Box<SignedPolicy>),
    NotModified,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

/// Plain HTTP is refused except to this machine: a device token must not cross a network
/// in clear text.
pub fn parse_server_url(url: &str) -> Result<Url, SyncError> {
    let bad = |reason: &str| SyncError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(parsed)
            } else {
                Err(bad(
                    "plain http is allowed only to this machine (localhost); use https",
                ))
            }
        }
        _ => Err(bad("the scheme must be https")),
    }
}

/// Checks that `pem` holds at least one certificate the TLS stack accepts as a root.
pub fn check_ca_pem(pem: &str) -> Result<Vec<reqwest::Certificate>, SyncError> {
    let bad = |reason: String| SyncError::BadCa(reason);
    let certs =
        reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

impl Client {
    pub fn new(server_url: &str) -> Result<Client, SyncError> {
        Client::with_ca(server_url, None)
    }

    /// A client that, given a CA (PEM), trusts only that CA for the server's certificate:
    /// a pinned CA replaces the public roots rather than adding to them, so a certificate
    /// from any public authority for the same name is refused.
    pub fn with_ca(server_url: &str, ca_pem: Option<&str>) -> Result<Client, SyncError> {
        let base = parse_server_url(server_url)?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("tandem-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            builder = builder.tls_built_in_root_certs(false);
            for cert in check_ca_pem(pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| SyncError::Network(e.to_string()))?;
        Ok(Client { http, base })
    }

    fn url(&self, path: &str) -> Result<Url, SyncError> {
        self.base.join(path).map_err(|e| SyncError::BadUrl {
            url: path.to_owned(),
            reason: e.to_string(),
        })
    }

    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, SyncError> {
        let resp = self
            .http
            .post(self.url(v1::PATH_ENROLL)?)
            .timeout(Duration::from_secs(30))
            .json(request)
            .send()
            .await
            .map_err(network)?;
        if resp.status().is_success() {
            return resp
                .json()
                .await
                .map_err(|e| SyncError::Malformed(e.to_string()));
        }
        Err(match problem_of(resp).await {
            (_, Some(p)) if p.kind == v1::problem::BAD_ENROLL_SECRET => {
                SyncError::BadSecret(p.detail.unwrap_or(p.title))
            }
            (status, p) => server_error(status, p),
        })
    }

    /// Sends one report body (already serialized, as stored in the outbox).
    pub async fn send_report(
        &self,
        token: &DeviceToken,
        body: &str,
    ) -> Result<ReportAck, SyncError> {
        let resp = self
            .http
            .post(self.url(v1::PATH_REPORTS)?)
            .timeout(Duration::from_secs(30))
            .bearer_auth(token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .map_err(network)?;
        json_or_problem(resp).await
    }

    /// Sends a phishing report: a JSON link report or a multipart form with the message file,
    /// built by the caller (`crate::phishing`) with its content type.
    pub async fn report_phishing(
        &self,
        token: &DeviceToken,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<v1::PhishingAck, SyncError> {
        let resp = self
            .http
            .post(self.url(v1::PATH_PHISHING)?)
            // A 10 MB message over a slow uplink takes a while.
            .timeout(Duration::from_secs(120))
            .bearer_auth(token.expose())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(network)?;
        json_or_problem(resp).await
    }

    /// The phishing reports this device sent, newest first, with IT's triage and reply.
    pub async fn phishing_statuses(
        &self,
        token: &DeviceToken,
    ) -> Result<Vec<v1::PhishingReportStatus>, SyncError> {
        let resp = self
            .http
            .get(self.url(v1::PATH_PHISHING)?)
            .timeout(Duration::from_secs(30))
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(network)?;
        json_or_problem(resp).await
    }

    /// What IT's identity provider knows about the device's user (MFA, password age).
    pub async fn identity(&self, token: &DeviceToken) -> Result<IdentityFacts, SyncError> {
        let resp = self
            .http
            .get(self.url(v1::PATH_IDENTITY)?)
            .timeout(Duration::from_secs(30))
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(network)?;
        json_or_problem(resp).await
    }

    /// Asks for an update of `target` newer than `current_version`; `None` on 204.
    pub async fn check_update(
        &self,
        token: &DeviceToken,
        target: &str,
        current_version: &str,
    ) -> Result<Option<v1::UpdateInfo>, SyncError> {
        let mut url = self.url(v1::PATH_UPDATE)?;
        url.query_pairs_mut()
            .append_pair("target", target)
            .append_pair("current_version", current_version);
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(30))
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(network)?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        json_or_problem(resp).await.map(Some)
    }

    /// Downloads an update artifact, at most `max_bytes` of it. The device token goes only
    /// to the enrolled server: a URL on another origin is refused, not followed.
    pub async fn download_artifact(
        &self,
        token: &DeviceToken,
        url: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, SyncError> {
        let parsed = Url::parse(url).map_err(|e| SyncError::BadUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        if parsed.origin() != self.base.origin() {
            return Err(SyncError::BadUrl {
                url: url.to_owned(),
                reason: "not on the enrolled server".into(),
            });
        }
        let mut resp = self
            .http
            .get(parsed)
            .timeout(Duration::from_secs(600))
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(network)?;
        if !resp.status().is_success() {
            return Err(classify(resp).await);
        }
        let too_big = || SyncError::Malformed(format!("the artifact is over {max_bytes} bytes"));
        if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(network)? {
            if body.len() + chunk.len() > max_bytes {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Fetches the device's policy; with `wait`, the server holds the request until the
    /// policy differs from `etag` or the wait ends.
    pub async fn poll_policy(
        &self,
        token: &DeviceToken,
        etag: Option<&str>,
        wait: Option<Duration>,
    ) -> Result<PolicyPoll, SyncError> {
        let mut url = self.url(v1::PATH_POLICY)?;
        if let Some(wait) = wait {
            url.query_pairs_mut()
                .append_pair("wait", &wait.as_secs().to_string());
        }
        let mut req = self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .timeout(wait.unwrap_or_default() + Duration::from_secs(30));
        if let Some(etag) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, format!("\"{etag}\""));
        }
        let resp = req.send().await.map_err(network)?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(PolicyPoll::NotModified);
        }
        if resp.status().is_success() {
            let signed: SignedPolicy = resp
                .json()
                .await
                .map_err(|e| SyncError::Malformed(e.to_string()))?;
            return Ok(PolicyPoll::Changed(Box::new(signed)));
        }
        Err(classify(resp).await)
    }
}

/// The JSON body of a successful answer, else the error its problem+json describes.
async fn json_or_problem<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
) -> Result<T, SyncError> {
    if resp.status().is_success() {
        return resp
            .json()
            .await
            .map_err(|e| SyncError::Malformed(e.to_string()));
    }
    Err(classify(resp).await)
}

fn network(e: reqwest::Error) -> SyncError {
    // reqwest's Display omits the underlying cause ("connection refused"); include it once.
    let mut msg = e.to_string();
    if let Some(source) = std::error::Error::source(&e) {
        let s = source.to_string();
        if !msg.contains(&s) {
            msg = format!("{msg}: {s}");
        }
    }
    SyncError::Network(msg)
}

async fn problem_of(resp: reqwest::Response) -> (StatusCode, Option<Problem>) {
    let status = resp.status();
    let problem = resp.json::<Problem>().await.ok();
    (status, problem)
}

fn server_error(status: StatusCode, problem: Option<Problem>) -> SyncError {
    let detail = problem
        .map(|p| p.detail.unwrap_or(p.title))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    SyncError::Server {
        status: status.as_u16(),
        detail,
    }
}

async fn classify(resp: reqwest::Response) -> SyncError {
    match problem_of(resp).await {
        (StatusCode::UNAUTHORIZED, Some(p)) if p.kind == v1::problem::ENROLL_AGAIN => {
            SyncError::EnrollAgain
        }
        (status, p) => server_error(status, p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(parse_server_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_server_url("http://localhost:8080/").is_ok());
        assert!(parse_server_url("http://[::1]:8080/").is_ok());
        assert!(parse_server_url("https://tandem.example.com").is_ok());
        assert!(parse_server_url("http://tandem.example.com").is_err());
        assert!(parse_server_url("http://10.0.0.5").is_err());
        assert!(parse_server_url("ftp://example.com").is_err());
        assert!(parse_server_url("not a url").is_err());
    }
}
