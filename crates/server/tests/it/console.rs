//! The IT console over HTTP: sign-in with password and TOTP, lockout, session cookies, the
//! whole route table against each role, CSRF refusal, and escaping of hostile device data.
//! (The same pages in a real browser: `tests/it/console.rs` of `tandem-e2e`.)

use std::sync::Arc;

use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use tandem_proto::CheckId;
use tandem_server::config::RateLimit;
use tandem_server::console::auth::totp_code;
use tandem_server::console::{Access, ROUTES};
use tandem_server::Role;

use serde_json::{json, Value};

use crate::support::{sample_report, Backend, TestDb, TestServer};

const PASSWORD: &str = "correct horse battery staple";

/// A browser without the browser: keeps the console's cookies by hand.
pub(crate) struct Browser {
    http: Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    pub(crate) fn new(server: &TestServer) -> Browser {
        Browser {
            http: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.server.url(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// The value of the cookie `name`, if this browser holds it.
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// GETs `path` on the console, or an absolute URL (another site, such as an identity
    /// provider) with this browser's cookies all the same.
    pub(crate) async fn get(&mut self, path: &str) -> Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let response = self
            .http
            .get(url)
            .header("Cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// Posts a multipart form (a file upload) with this browser's cookies.
    pub(crate) async fn post_multipart(
        &mut self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> Response {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .multipart(form)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// The CSRF token of the signed-in page at `path`.
    pub(crate) async fn csrf(&mut self, path: &str) -> String {
        let html = self.get(path).await.text().await.unwrap();
        hidden_value(&html, "csrf")
    }

    async fn sign_in(&mut self, server: &TestServer, user: &str, secret: &str) -> Response {
        let html = self.get("/console/login").await.text().await.unwrap();
        let token = hidden_value(&html, "login_token");
        let step = server.clock_now().timestamp() / 30;
        let code = format!("{:06}", totp_code(secret, step).unwrap());
        self.post(
            "/console/login",
            &[
                ("username", user),
                ("password", PASSWORD),
                ("code", &code),
                ("login_token", &token),
            ],
        )
        .await
    }
}

fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

pub(crate) trait ClockNow {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc>;
}

impl ClockNow for TestServer {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        tandem_server::Clock::now(&self.clock)
    }
}

async fn account(server: &TestServer, name: &str, role: Role) -> String {
    server
        .app()
        .create_console_admin(name, PASSWORD, role)
        .await
        .unwrap()
}

pub(crate) async fn signed_in(server: &TestServer, name: &str, role: Role) -> Browser {
    let secret = account(server, name, role).await;
    let mut browser = Browser::new(server);
    let response = browser.sign_in(server, name, &secret).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name} signs in");
    browser
}

async fn sign_in_with_password_and_code_then_lockout(backend: Backend) {
    let server = TestServer::start(backend).await;
    let secret = account(&server, "ada", Role::Admin).await;
    let mut browser = Browser::new(&server);

    // Without a session every page sends the browser to the sign-in page.
    let response = browser.get("/console").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/console/login");

    // A right password with a wrong code fails, four more times locks the account...
    let mut html = browser.get("/console/login").await.text().await.unwrap();
    for attempt in 0..5 {
        let token = hidden_value(&html, "login_token");
        let response = browser
            .post(
                "/console/login",
                &[
                    ("username", "ada"),
                    ("password", PASSWORD),
                    ("code", "000000"),
                    ("login_token", &token),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        html = response.text().await.unwrap();
        let expected = if attempt < 4 {
            "Wrong username, password or code"
        } else {
            "locked until"
        };
        assert!(html.contains(expected), "attempt {attempt}: {html}");
    }
    // ...so that even the right code is refused until the lock runs out.
    let response = browser.sign_in(&server, "ada", &secret).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.text().await.unwrap().contains("locked until"));
    server.clock.advance(chrono::Duration::minutes(16));

    let response = browser.sign_in(&server, "ada", &secret).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tandem_console="))
        .unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(
            cookie.contains(attribute),
            "{attribute} missing from {cookie}"
        );
    }
    let response = browser.get("/console").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));

    // The same code cannot open a second session.
    let mut other = Browser::new(&server);
    let response = other.sign_in(&server, "ada", &secret).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Signing out ends the session on the server, not only in the browser.
    let session = browser.cookie_header();
    let csrf = browser.csrf("/console").await;
    let response = browser.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let replay = browser
        .http
        .get(format!("{}/console", browser.base))
        .header("Cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
}

/// Real ids for the route table's placeholders, so that admin requests reach handlers.
async fn concrete(path: &str, server: &TestServer) -> String {
    let store = server.app().store();
    let id = if path.starts_with("/console/phishing/") {
        store.list_phishing_reports(1, 0).await.unwrap()[0].id
    } else if path.starts_with("/console/webhooks/") {
        store.list_webhook_configs().await.unwrap()[0].id
    } else {
        let filter = tandem_server::store::DeviceFilter {
            limit: 1,
            ..Default::default()
        };
        store.list_devices(&filter).await.unwrap().devices[0]
            .device
            .id
    };
    if path == "/console/identity/new" {
        return format!("{path}?kind=okta");
    }
    path.replace("{id}", &id.to_string())
        .replace("{group}", "default")
        .replace("{name}", ROUTES_SOURCE)
}

/// The console-configured identity source and webhook the route table's paths name.
const ROUTES_SOURCE: &str = "okta-routes";

async fn configure_integrations(server: &TestServer) {
    let by = tandem_server::store::ChangeBy {
        actor: "test".into(),
        at: server.clock_now(),
    };
    let store = server.app().store();
    let source = tandem_server::store::integrations::StoredSourceConfig {
        name: ROUTES_SOURCE.into(),
        kind: "okta".into(),
        config: serde_json::json!({"name": ROUTES_SOURCE, "kind": "okta", "interval_minutes": 60,
            "base_url": "http://127.0.0.1:9", "api_token": "t", "search": "x"}),
        updated_at: by.at,
        updated_by: "test".into(),
    };
    assert!(store.create_source_config(&source, &by).await.unwrap());
    let hook = tandem_server::store::integrations::StoredWebhook {
        id: uuid::Uuid::now_v7(),
        name: "siem".into(),
        config: serde_json::json!({"url": "http://127.0.0.1:9/hook", "format": "generic",
            "secret": "s", "events": []}),
        updated_at: by.at,
        updated_by: "test".into(),
    };
    assert!(store.create_webhook_config(&hook, &by).await.unwrap());
}

async fn every_route_against_every_role(backend: Backend) {
    let server = TestServer::start(backend).await;
    let enrolled = server.enroll("default", "m-routes").await;
    server
        .post_report(&enrolled.device_token, &sample_report("m-routes"))
        .await;
    let phish = server
        .http
        .post(server.url(tandem_proto::v1::PATH_PHISHING))
        .bearer_auth(&enrolled.device_token)
        .json(&serde_json::json!({"url": "https://evil.example/login", "note": "odd"}))
        .send()
        .await
        .unwrap();
    assert!(phish.status().is_success(), "{}", phish.status());
    configure_integrations(&server).await;
    let mut admin = signed_in(&server, "root", Role::Admin).await;
    let mut viewer = signed_in(&server, "val", Role::Viewer).await;
    let mut anonymous = Browser::new(&server);
    let admin_csrf = admin.csrf("/console").await;
    let viewer_csrf = viewer.csrf("/console").await;
    let audit_before = server.count("audit_log").await;

    for (method, path, access) in ROUTES {
        let path = concrete(path, &server).await;
        if *method == "GET" {
            let a = anonymous.get(&path).await.status();
            let v = viewer.get(&path).await.status();
            let m = admin.get(&path).await.status();
            if path.starts_with("/console/oidc/") {
                // Single sign-on is not configured here: public, and the same for everyone
                // (`oidc.rs` walks these routes configured).
                for (who, status) in [("anonymous", a), ("viewer", v), ("admin", m)] {
                    assert_eq!(status, StatusCode::NOT_FOUND, "GET {path} {who}");
                }
                continue;
            }
            match access {
                Access::Public => assert_eq!(a, StatusCode::OK, "GET {path} anonymous"),
                _ => assert_eq!(a, StatusCode::SEE_OTHER, "GET {path} anonymous"),
            }
            assert_eq!(v, StatusCode::OK, "GET {path} viewer");
            assert_eq!(m, StatusCode::OK, "GET {path} admin");
            continue;
        }
        if path == "/console/logout" {
            continue;
        }
        let a = anonymous.post(&path, &[("csrf", "x")]).await.status();
        let v = viewer.post(&path, &[("csrf", &viewer_csrf)]).await.status();
        match access {
            Access::Public => assert_ne!(a, StatusCode::SEE_OTHER, "POST {path} anonymous"),
            Access::SignedIn | Access::Admin => {
                assert_eq!(a, StatusCode::SEE_OTHER, "POST {path} anonymous")
            }
        }
        if *access == Access::Admin {
            assert_eq!(v, StatusCode::FORBIDDEN, "POST {path} viewer");
            // An admin without the token is refused too; with it, the handler runs (and
            // may still refuse the empty form on its merits).
            let m = admin.post(&path, &[]).await.status();
            assert_eq!(
                m,
                StatusCode::FORBIDDEN,
                "POST {path} admin without CSRF token"
            );
        }
    }
    // The viewer changed nothing at all.
    assert_eq!(server.count("audit_log").await, audit_before);

    // And the admin's forms do work: one change per kind of form.
    let response = admin
        .post("/console/groups", &[("csrf", &admin_csrf), ("name", "eng")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(server.count("audit_log").await > audit_before);
}

async fn state_changes_without_the_csrf_token_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = signed_in(&server, "root", Role::Admin).await;
    let csrf = admin.csrf("/console/policies/default").await;
    let policy = r#"{"org": {"name": "Acme"}}"#;
    let versions = || async {
        server
            .app()
            .store()
            .policy_versions("default")
            .await
            .unwrap()
            .len()
    };

    for form in [
        vec![("policy", policy)],
        vec![("policy", policy), ("csrf", "forged")],
        vec![("policy", policy), ("csrf", "")],
    ] {
        let response = admin.post("/console/policies/default/push", &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    // Another site's page posting with a stolen token is refused by its Origin.
    let response = admin
        .http
        .post(format!("{}/console/policies/default/push", admin.base))
        .header("Cookie", admin.cookie_header())
        .header("Origin", "https://evil.example")
        .form(&[("policy", policy), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(versions().await, 0, "nothing was stored");

    let response = admin
        .post(
            "/console/policies/default/push",
            &[("policy", policy), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(versions().await, 1);
    let audit = server
        .app()
        .store()
        .list_audit(&tandem_server::store::AuditQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit[0].actor, "admin:root");
}

const PAYLOAD: &str = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";

async fn hostile_device_data_is_escaped_on_every_page(backend: Backend) {
    let server = TestServer::start(backend).await;
    let enrolled = server.enroll("default", "m-hostile").await;
    let mut report = sample_report("m-hostile");
    report.inventory.device.hostname = format!("host{PAYLOAD}");
    for r in &mut report.results {
        r.summary = PAYLOAD.to_owned();
        r.details = serde_json::json!({"note": PAYLOAD});
    }
    let response = server.post_report(&enrolled.device_token, &report).await;
    assert!(response.status().is_success(), "{}", response.status());
    let mut admin = signed_in(&server, "root", Role::Admin).await;

    let device = format!("/console/devices/{}", enrolled.device_id);
    for path in [
        "/console",
        &device,
        "/console/audit",
        "/console/policies/default",
    ] {
        let response = admin.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let html = response.text().await.unwrap();
        assert!(
            !html.contains("<script>window"),
            "{path} has the raw payload"
        );
        assert!(!html.contains("<img src=x"), "{path} has the raw payload");
        if path != "/console/audit" && path != "/console/policies/default" {
            assert!(
                html.contains("&#60;script&#62;window.__pwned=1&#60;/script&#62;"),
                "{path}: {html}"
            );
        }
    }
    // The device appears in the overview's list under its escaped name.
    let html = admin.get("/console?q=host").await.text().await.unwrap();
    assert!(html.contains("host&#60;script&#62;"));
    let _ = CheckId::ALL;
}

/// The console's own audit rows (`console.*`) after the first `skip`: action, actor, target
/// and `after` as JSON.
async fn console_audit(server: &TestServer, skip: usize) -> Vec<(String, String, String, Value)> {
    server
        .db
        .column::<String>(
            "SELECT action || '|' || actor || '|' || target || '|' || COALESCE(after, 'null')
             FROM audit_log WHERE action LIKE 'console.%' ORDER BY id",
        )
        .await
        .into_iter()
        .skip(skip)
        .map(|row| {
            let mut parts = row.splitn(4, '|');
            let mut next = || parts.next().unwrap().to_owned();
            let (action, actor, target) = (next(), next(), next());
            (
                action,
                actor,
                target,
                serde_json::from_str(&next()).unwrap(),
            )
        })
        .collect()
}

/// Posts one sign-in attempt from a fresh sign-in page; returns the status and the code.
async fn attempt(
    browser: &mut Browser,
    user: &str,
    password: &str,
    code: String,
) -> (StatusCode, String) {
    let html = browser.get("/console/login").await.text().await.unwrap();
    let token = hidden_value(&html, "login_token");
    let status = browser
        .post(
            "/console/login",
            &[
                ("username", user),
                ("password", password),
                ("code", &code),
                ("login_token", &token),
            ],
        )
        .await
        .status();
    (status, code)
}

/// A six-digit code that matches none of the steps around now.
fn wrong_code(server: &TestServer, secret: &str) -> String {
    let step = server.clock_now().timestamp() / 30;
    let valid: Vec<u32> = (step - 1..=step + 1)
        .map(|s| totp_code(secret, s).unwrap())
        .collect();
    let code = (0..).find(|c| !valid.contains(c)).unwrap();
    format!("{code:06}")
}

async fn every_sign_in_outcome_is_audited_without_secrets(backend: Backend) {
    let server = TestServer::start(backend).await;
    let secret = account(&server, "ada", Role::Admin).await;
    let ada = server
        .app()
        .store()
        .console_admin_by_username("ada")
        .await
        .unwrap()
        .unwrap()
        .id;
    let target = format!("console_admin:{ada}");
    let mut browser = Browser::new(&server);
    let wrong_password = "Tr0ub4dor&3-not-it";
    let mut seen = console_audit(&server, 0).await.len();
    assert_eq!(seen, 0);
    let failed = |reason: &str| {
        (
            "console.sign_in_failed".to_owned(),
            "login:ada".to_owned(),
            target.clone(),
            json!({"method": "password+totp", "reason": reason}),
        )
    };
    let mut codes = Vec::new();

    // A wrong password (and code): one row, reason bad_password.
    let (status, code) = attempt(
        &mut browser,
        "ada",
        wrong_password,
        wrong_code(&server, &secret),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    codes.push(code);
    let rows = console_audit(&server, seen).await;
    assert_eq!(rows, [failed("bad_password")]);
    seen += rows.len();

    // The right password with a wrong code: bad_totp.
    let (status, code) = attempt(&mut browser, "ada", PASSWORD, wrong_code(&server, &secret)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    codes.push(code);
    let rows = console_audit(&server, seen).await;
    assert_eq!(rows, [failed("bad_totp")]);
    seen += rows.len();

    // An unknown username writes nothing (anyone could fill the log with names).
    let (status, _) = attempt(
        &mut browser,
        "nobody",
        PASSWORD,
        wrong_code(&server, &secret),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(console_audit(&server, seen).await.is_empty());

    // Two more failures, then the fifth locks the account: its row and the lockout's.
    for _ in 0..2 {
        let (_, code) = attempt(&mut browser, "ada", PASSWORD, wrong_code(&server, &secret)).await;
        codes.push(code);
    }
    seen += 2;
    let (status, code) = attempt(
        &mut browser,
        "ada",
        wrong_password,
        wrong_code(&server, &secret),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    codes.push(code);
    let rows = console_audit(&server, seen).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0], failed("bad_password"));
    assert_eq!(rows[1].0, "console.lockout");
    assert_eq!(rows[1].1, "login:ada");
    assert_eq!(rows[1].2, target);
    assert_eq!(rows[1].3["failures"], 5);
    assert!(rows[1].3["locked_until"].is_string(), "{rows:?}");
    seen += rows.len();

    // While locked, even the right password and code fail: reason locked.
    let step = server.clock_now().timestamp() / 30;
    let right = format!("{:06}", totp_code(&secret, step).unwrap());
    let (status, _) = attempt(&mut browser, "ada", PASSWORD, right).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let rows = console_audit(&server, seen).await;
    assert_eq!(rows, [failed("locked")]);
    seen += rows.len();

    // After the lock, a sign-in: one console.sign_in row as admin:ada.
    server.clock.advance(chrono::Duration::minutes(16));
    let step = server.clock_now().timestamp() / 30;
    let right = format!("{:06}", totp_code(&secret, step).unwrap());
    let (status, code) = attempt(&mut browser, "ada", PASSWORD, right.clone()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    codes.push(code);
    let rows = console_audit(&server, seen).await;
    assert_eq!(
        rows,
        [(
            "console.sign_in".to_owned(),
            "admin:ada".to_owned(),
            target.clone(),
            json!({"method": "password+totp"})
        )]
    );
    seen += rows.len();

    // The same code in another browser: reused, refused, recorded.
    let mut other = Browser::new(&server);
    let response = other.sign_in(&server, "ada", &secret).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let rows = console_audit(&server, seen).await;
    assert_eq!(rows, [failed("totp_reused")]);
    seen += rows.len();

    // The audit page's filters find these rows.
    let html = browser
        .get("/console/audit?action=console.lockout")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("locked_until"), "{html}");
    assert!(!html.contains("bad_totp"), "{html}");
    assert!(
        html.contains("<option value=\"console.sign_in_failed\""),
        "{html}"
    );
    let html = browser
        .get("/console/audit?action=console.sign_in_failed&actor=login%3Aada")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("bad_totp") && html.contains("totp_reused"),
        "{html}"
    );
    assert!(!html.contains("locked_until"), "{html}");

    // Signing out: one console.sign_out row.
    let csrf = browser.csrf("/console").await;
    let response = browser.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let rows = console_audit(&server, seen).await;
    assert_eq!(
        rows,
        [(
            "console.sign_out".to_owned(),
            "admin:ada".to_owned(),
            target.clone(),
            Value::Null
        )]
    );
    seen += rows.len();

    // A disabled account: reason disabled, under that account.
    account(&server, "bob", Role::Viewer).await;
    let bob = server
        .app()
        .store()
        .console_admin_by_username("bob")
        .await
        .unwrap()
        .unwrap()
        .id;
    let by = tandem_server::store::ChangeBy {
        actor: "admin:ada".into(),
        at: server.clock_now(),
    };
    assert!(server
        .app()
        .store()
        .disable_console_admin(bob, &by)
        .await
        .unwrap());
    let rows_before = console_audit(&server, seen).await.len();
    let mut bobs = Browser::new(&server);
    let html = bobs.get("/console/login").await.text().await.unwrap();
    let token = hidden_value(&html, "login_token");
    let response = bobs
        .post(
            "/console/login",
            &[
                ("username", "bob"),
                ("password", PASSWORD),
                ("code", "123456"),
                ("login_token", &token),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let rows = console_audit(&server, seen + rows_before).await;
    assert_eq!(
        rows,
        [(
            "console.sign_in_failed".to_owned(),
            "login:bob".to_owned(),
            format!("console_admin:{bob}"),
            json!({"method": "password+totp", "reason": "disabled"})
        )]
    );

    // No password, code or TOTP secret anywhere in the log.
    let everything = server
        .db
        .column::<String>(
            "SELECT actor || ' ' || action || ' ' || target || ' ' || COALESCE(before, '')
                    || ' ' || COALESCE(after, '') FROM audit_log",
        )
        .await
        .join("\n");
    assert!(!everything.contains(PASSWORD));
    assert!(!everything.contains(wrong_password));
    assert!(!everything.contains(&secret));
    for code in codes.iter().chain([&right]) {
        assert!(
            !everything.contains(code.as_str()),
            "{code} in {everything}"
        );
    }
}

/// Past its address's allowance a sign-in is refused before the account is looked at:
/// no password check, no audit row, however the attempts are spread over accounts.
async fn sign_ins_from_one_address_are_rate_limited(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let server = TestServer::start_with(db, |config| {
        config.sign_in_rate_limit = Some(RateLimit {
            per_minute: 1,
            burst: 3,
        });
    })
    .await;
    let secret = account(&server, "ada", Role::Admin).await;
    account(&server, "grace", Role::Viewer).await;
    let mut browser = Browser::new(&server);
    for user in ["ada", "grace", "ada"] {
        let (status, _) = attempt(
            &mut browser,
            user,
            "not-the-password",
            wrong_code(&server, &secret),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}");
    }
    let audited = console_audit(&server, 0).await.len();
    assert_eq!(audited, 3);

    let step = server.clock_now().timestamp() / 30;
    let right = format!("{:06}", totp_code(&secret, step).unwrap());
    let html = browser.get("/console/login").await.text().await.unwrap();
    let token = hidden_value(&html, "login_token");
    let response = browser
        .post(
            "/console/login",
            &[
                ("username", "ada"),
                ("password", PASSWORD),
                ("code", &right),
                ("login_token", &token),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let html = response.text().await.unwrap();
    assert!(html.contains("Too many sign-in attempts"), "{html}");
    assert_eq!(console_audit(&server, 0).await.len(), audited);
}

on_both_backends!(
    sign_in_with_password_and_code_then_lockout,
    every_sign_in_outcome_is_audited_without_secrets,
    sign_ins_from_one_address_are_rate_limited,
    every_route_against_every_role,
    state_changes_without_the_csrf_token_are_refused,
    hostile_device_data_is_escaped_on_every_page,
);
