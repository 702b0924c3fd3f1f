//! The IT console over HTTP: sign-in with password and TOTP, lockout, session cookies, the
//! whole route table against each role, CSRF refusal, and escaping of hostile device data.
//! (The same pages in a real browser: `tests/it/console.rs` of `tandem-e2e`.)

use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use tandem_proto::CheckId;
use tandem_server::console::auth::totp_code;
use tandem_server::console::{Access, ROUTES};
use tandem_server::Role;

use crate::support::{sample_report, Backend, TestServer};

const PASSWORD: &str = "correct horse battery staple";

/// A browser without the browser: keeps the console's cookies by hand.
pub(crate) struct Browser {
    http: Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(server: &TestServer) -> Browser {
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

    pub(crate) async fn get(&mut self, path: &str) -> Response {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
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

on_both_backends!(
    sign_in_with_password_and_code_then_lockout,
    every_route_against_every_role,
    state_changes_without_the_csrf_token_are_refused,
    hostile_device_data_is_escaped_on_every_page,
);
