//! Identity facts: bulk import (CSV and JSON), the agent's view of its user, and the four
//! polled sources, each tested against a local server that answers with the vendor's
//! documented response shapes and paging.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{TimeZone as _, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tandem_proto::v1::{self, IdentityFacts};
use tandem_server::identity::sources::{duo_sign, SourceConfig};
use tandem_server::store::{action, AuditEntry, IdentityFact};
use tandem_server::Role;

use crate::support::{problem, Backend, TestDb, TestServer};

on_both_backends!(
    an_import_reaches_the_agent_matched_by_email_then_login,
    a_bad_import_is_refused_whole,
    sources_are_polled_into_facts_with_their_health,
);

async fn agent_identity(t: &TestServer, token: &str) -> IdentityFacts {
    let response = t
        .http
        .get(t.url(v1::PATH_IDENTITY))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn import(t: &TestServer, token: &str, content_type: &str, body: &str) -> reqwest::Response {
    t.http
        .post(t.url("/api/v1/admin/identities/import"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn an_import_reaches_the_agent_matched_by_email_then_login(backend: Backend) {
    let t = TestServer::start(backend).await;
    let admin = t.api_token(Role::Admin).await;
    let viewer = t.api_token(Role::Viewer).await;
    // The harness enrols every device as login `ada`, email `ada@example.test`.
    let device = t.enroll("default", "m1").await;
    assert_eq!(
        agent_identity(&t, &device.device_token).await,
        IdentityFacts::default()
    );

    let csv = "email,login,mfa_enrolled,password_changed_at\n\
               ADA@example.test,ada,false,2024-01-02T03:04:05Z\n\
               grace@example.test,grace,true,\n";
    let response = import(&t, &admin, "text/csv", csv).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"imported": 2})
    );
    problem(
        import(&t, &viewer, "text/csv", csv).await,
        StatusCode::FORBIDDEN,
    )
    .await;

    let facts = agent_identity(&t, &device.device_token).await;
    assert_eq!(facts.mfa_enrolled, Some(false));
    assert_eq!(
        facts.password_changed_at,
        Some(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap())
    );
    assert_eq!(facts.source.as_deref(), Some("import"));
    assert!(facts.as_of.is_some());

    // A later JSON import updates the same user; the enrolment URL comes from the policy.
    let json = json!([{"email": "ada@example.test", "mfa_enrolled": true}]).to_string();
    assert_eq!(
        import(&t, &admin, "application/json", &json).await.status(),
        StatusCode::OK
    );
    let policy =
        json!({"checks": {"mfa": {"enabled": true, "enroll_url": "https://id.example/mfa"}}});
    assert_eq!(
        t.put_policy(&admin, "default", &policy).await.status(),
        StatusCode::OK
    );
    let facts = agent_identity(&t, &device.device_token).await;
    assert_eq!(facts.mfa_enrolled, Some(true));
    assert_eq!(facts.enroll_url.as_deref(), Some("https://id.example/mfa"));

    // A user known only by login is matched by login.
    let other = t
        .http
        .post(t.url(v1::PATH_ENROLL))
        .json(&json!({
            "enroll_secret": t.enroll_secret("default").await,
            "device": {"machine_id": "m2", "hostname": "h2", "os": "linux", "os_version": "12"},
            "user": {"login": "Linus"},
        }))
        .send()
        .await
        .unwrap()
        .json::<v1::EnrollResponse>()
        .await
        .unwrap();
    assert_eq!(
        import(&t, &admin, "text/csv", "login,mfa_enrolled\nlinus,yes\n")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        agent_identity(&t, &other.device_token).await.mfa_enrolled,
        Some(true)
    );

    let list: Vec<IdentityFact> = t
        .get_admin(&viewer, "/api/v1/admin/identities?q=example")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    let log: Vec<AuditEntry> = t
        .get_admin(&viewer, "/api/v1/admin/audit?action=identity.import")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].action, action::IDENTITY_IMPORT);
}

async fn a_bad_import_is_refused_whole(backend: Backend) {
    let t = TestServer::start(backend).await;
    let admin = t.api_token(Role::Admin).await;
    let cases = [
        (
            "text/csv",
            "email,mfa_enrolled\na@x,true\nb@x,perhaps\n",
            422,
            "row 3",
        ),
        ("text/csv", "email,colour\na@x,red\n", 422, "colour"),
        ("text/csv", "email,mfa_enrolled\n,true\n", 422, "row 2"),
        (
            "application/json",
            "[{\"email\": \"a@x\"}, {\"email\": 7}]",
            422,
            "row 2",
        ),
        ("application/json", "{\"email\": \"a@x\"}", 422, "array"),
        (
            "application/json",
            "[{\"email\": \"a@x\", \"as_of\": \"9999-01-01T00:00:00Z\"}]",
            422,
            "out of range",
        ),
        ("text/plain", "email\na@x\n", 415, "text/csv"),
    ];
    for (ct, body, status, needle) in cases {
        let body = problem(
            import(&t, &admin, ct, body).await,
            StatusCode::from_u16(status).unwrap(),
        )
        .await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{ct} {detail}");
    }
    assert_eq!(t.count("identities").await, 0);
    assert_eq!(
        t.count("audit_log").await,
        1,
        "only the admin token's creation"
    );
}

// --- Local vendor servers -------------------------------------------------------------------

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn unauthorized() -> axum::response::Response {
    (
        AxumStatus::UNAUTHORIZED,
        Json(json!({"errorCode": "E0000011"})),
    )
        .into_response()
}

/// Okta: `GET /api/v1/users` paged by `Link: <…>; rel="next"`, `passwordChanged`, and
/// `GET /api/v1/users/{id}/factors` where only `ACTIVE` factors count.
pub(crate) async fn okta_server() -> String {
    async fn users(
        State(base): State<Arc<std::sync::Mutex<String>>>,
        headers: HeaderMap,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::response::Response {
        if headers["authorization"] != "SSWS okta-token" {
            return unauthorized();
        }
        assert_eq!(
            q.get("search").map(String::as_str),
            Some("status eq \"ACTIVE\"")
        );
        let base = base.lock().unwrap().clone();
        if !q.contains_key("after") {
            let link = format!(
                "<{base}/api/v1/users?limit=200>; rel=\"self\", <{base}/api/v1/users?after=00u1&limit=200&search=status%20eq%20%22ACTIVE%22>; rel=\"next\""
            );
            (
                [("link", link)],
                Json(json!([{
                    "id": "00u1", "status": "ACTIVE",
                    "passwordChanged": "2024-03-01T10:00:00.000Z",
                    "profile": {"login": "ada@example.test", "email": "ada@example.test",
                                "firstName": "Ada", "lastName": "Lovelace"},
                    "_links": {"self": {"href": format!("{base}/api/v1/users/00u1")}}
                }])),
            )
                .into_response()
        } else {
            Json(json!([{
                "id": "00u2", "status": "ACTIVE", "passwordChanged": null,
                "profile": {"login": "grace@example.test", "email": "grace@example.test"}
            }]))
            .into_response()
        }
    }
    async fn factors(
        headers: HeaderMap,
        axum::extract::Path(id): axum::extract::Path<String>,
    ) -> axum::response::Response {
        if headers["authorization"] != "SSWS okta-token" {
            return unauthorized();
        }
        let status = if id == "00u1" {
            "ACTIVE"
        } else {
            "PENDING_ACTIVATION"
        };
        Json(json!([
            {"id": "uft1", "factorType": "token:software:totp", "provider": "GOOGLE", "status": status},
            {"id": "sms1", "factorType": "sms", "provider": "OKTA", "status": "NOT_SETUP"}
        ]))
        .into_response()
    }
    let base = Arc::new(std::sync::Mutex::new(String::new()));
    let router = Router::new()
        .route("/api/v1/users", get(users))
        .route("/api/v1/users/{id}/factors", get(factors))
        .with_state(Arc::clone(&base));
    let url = serve(router).await;
    *base.lock().unwrap() = url.clone();
    url
}

/// Microsoft Graph: a client-credentials token, `userRegistrationDetails` (isMfaRegistered)
/// and `users` (lastPasswordChangeDateTime), each paged by `@odata.nextLink`.
async fn graph_server() -> String {
    #[derive(serde::Deserialize)]
    struct TokenForm {
        grant_type: String,
        client_id: String,
        client_secret: String,
        scope: String,
    }
    async fn token(Form(f): Form<TokenForm>) -> axum::response::Response {
        if f.grant_type != "client_credentials"
            || f.client_id != "app"
            || f.client_secret != "graph-secret"
        {
            return (
                AxumStatus::BAD_REQUEST,
                Json(json!({"error": "invalid_client"})),
            )
                .into_response();
        }
        assert_eq!(f.scope, "https://graph.microsoft.com/.default");
        Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "graph-token"}))
            .into_response()
    }
    async fn registrations(
        State(base): State<Arc<std::sync::Mutex<String>>>,
        headers: HeaderMap,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::response::Response {
        if headers["authorization"] != "Bearer graph-token" {
            return unauthorized();
        }
        let base = base.lock().unwrap().clone();
        let context = "https://graph.microsoft.com/v1.0/$metadata#reports/authenticationMethods/userRegistrationDetails";
        if !q.contains_key("$skiptoken") {
            Json(json!({
                "@odata.context": context,
                "@odata.nextLink": format!("{base}/v1.0/reports/authenticationMethods/userRegistrationDetails?$skiptoken=p2"),
                "value": [{
                    "id": "u1", "userPrincipalName": "ada@example.test", "userDisplayName": "Ada",
                    "isAdmin": false, "isMfaCapable": true, "isMfaRegistered": true,
                    "methodsRegistered": ["microsoftAuthenticatorPush"], "userType": "member"
                }]
            }))
            .into_response()
        } else {
            Json(json!({"@odata.context": context, "value": [{
                "id": "u2", "userPrincipalName": "grace@example.test", "isMfaRegistered": false,
                "methodsRegistered": []
            }]}))
            .into_response()
        }
    }
    async fn users(
        headers: HeaderMap,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::response::Response {
        if headers["authorization"] != "Bearer graph-token" {
            return unauthorized();
        }
        assert!(q["$select"].contains("lastPasswordChangeDateTime"));
        Json(json!({"value": [
            {"id": "u1", "userPrincipalName": "ada@example.test", "mail": "ada@example.test",
             "lastPasswordChangeDateTime": "2024-02-01T08:00:00Z"},
            {"id": "u2", "userPrincipalName": "grace@example.test", "mail": null,
             "lastPasswordChangeDateTime": "2023-12-24T00:00:00Z"}
        ]}))
        .into_response()
    }
    let base = Arc::new(std::sync::Mutex::new(String::new()));
    let router = Router::new()
        .route("/tenant-1/oauth2/v2.0/token", post(token))
        .route(
            "/v1.0/reports/authenticationMethods/userRegistrationDetails",
            get(registrations),
        )
        .route("/v1.0/users", get(users))
        .with_state(Arc::clone(&base));
    let url = serve(router).await;
    *base.lock().unwrap() = url.clone();
    url
}

/// Google Directory: `users` with `isEnrolledIn2Sv`, paged by `nextPageToken`.
async fn google_server() -> String {
    async fn users(
        headers: HeaderMap,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::response::Response {
        if headers["authorization"] != "Bearer google-token" {
            return unauthorized();
        }
        assert_eq!(q["customer"], "my_customer");
        if !q.contains_key("pageToken") {
            Json(json!({
                "kind": "admin#directory#users", "etag": "\"e\"", "nextPageToken": "p2",
                "users": [{"kind": "admin#directory#user", "id": "1", "primaryEmail": "ada@example.test",
                           "isEnrolledIn2Sv": true, "isEnforcedIn2Sv": false, "suspended": false}]
            }))
            .into_response()
        } else {
            Json(json!({
                "kind": "admin#directory#users",
                "users": [{"id": "2", "primaryEmail": "grace@example.test", "isEnrolledIn2Sv": false}]
            }))
            .into_response()
        }
    }
    serve(Router::new().route("/admin/directory/v1/users", get(users))).await
}

/// Duo Admin API: HMAC-SHA1 signed requests, `is_enrolled`, `status: bypass`, and offset
/// paging through `metadata.next_offset`.
async fn duo_server() -> String {
    async fn users(
        headers: HeaderMap,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::response::Response {
        let date = headers["date"].to_str().unwrap();
        let host = headers["host"].to_str().unwrap();
        let params: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let expected = duo_sign(
            date,
            "GET",
            host,
            "/admin/v1/users",
            &params,
            "DIXXXXXXXX",
            "duo-secret",
        );
        if headers["authorization"] != expected.as_str() {
            return (AxumStatus::UNAUTHORIZED, Json(json!({"stat": "FAIL", "code": 40103, "message": "Invalid signature in request credentials"}))).into_response();
        }
        assert_eq!(q["limit"], "300");
        if q["offset"] == "0" {
            Json(json!({"stat": "OK", "metadata": {"next_offset": 2, "total_objects": 3}, "response": [
                {"user_id": "DU1", "username": "ada", "email": "ada@example.test", "is_enrolled": true, "status": "active"},
                {"user_id": "DU2", "username": "grace", "email": "grace@example.test", "is_enrolled": true, "status": "bypass"}
            ]}))
            .into_response()
        } else {
            Json(json!({"stat": "OK", "metadata": {"total_objects": 3}, "response": [
                {"user_id": "DU3", "username": "linus", "email": "", "is_enrolled": false, "status": "active"}
            ]}))
            .into_response()
        }
    }
    serve(Router::new().route("/admin/v1/users", get(users))).await
}

fn sources(
    okta: &str,
    graph: &str,
    google: &str,
    duo: &str,
    okta_token: &str,
) -> Vec<SourceConfig> {
    serde_json::from_value(json!([
        {"name": "okta", "kind": "okta", "base_url": okta, "api_token": okta_token},
        {"name": "entra", "kind": "entra", "tenant_id": "tenant-1", "client_id": "app",
         "client_secret": "graph-secret", "graph_url": graph,
         "token_url": format!("{graph}/tenant-1/oauth2/v2.0/token")},
        {"name": "google", "kind": "google", "access_token": "google-token", "base_url": google},
        {"name": "duo", "kind": "duo", "api_host": duo.trim_start_matches("http://"),
         "integration_key": "DIXXXXXXXX", "secret_key": "duo-secret", "scheme": "http"},
    ]))
    .unwrap()
}

async fn sources_are_polled_into_facts_with_their_health(backend: Backend) {
    let (okta, graph, google, duo) = (
        okta_server().await,
        graph_server().await,
        google_server().await,
        duo_server().await,
    );
    let db = Arc::new(TestDb::new(backend).await);
    let t = TestServer::start_with(Arc::clone(&db), |c| {
        c.identity_sources = sources(&okta, &graph, &google, &duo, "okta-token");
    })
    .await;
    let health = t.app().poll_identity_sources().await.unwrap();
    for h in &health {
        assert_eq!(h.last_error, None, "{}", h.name);
    }
    let users: Vec<_> = health.iter().map(|h| (h.name.as_str(), h.users)).collect();
    assert_eq!(
        users,
        [
            ("okta", Some(2)),
            ("entra", Some(2)),
            ("google", Some(2)),
            ("duo", Some(3))
        ]
    );

    let viewer = t.api_token(Role::Viewer).await;
    let facts: Vec<IdentityFact> = t
        .get_admin(&viewer, "/api/v1/admin/identities?limit=100")
        .await
        .json()
        .await
        .unwrap();
    let by = |source: &str, key: &str| {
        facts
            .iter()
            .find(|f| f.source == source && f.user_key().as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no {source} fact for {key}"))
            .clone()
    };
    let ada = by("okta", "ada@example.test");
    assert_eq!(ada.mfa_enrolled, Some(true));
    assert_eq!(
        ada.password_changed_at,
        Some(Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap())
    );
    let grace = by("okta", "grace@example.test");
    assert_eq!(
        (grace.mfa_enrolled, grace.password_changed_at),
        (Some(false), None)
    );

    let ada = by("entra", "ada@example.test");
    assert_eq!(ada.mfa_enrolled, Some(true));
    assert_eq!(
        ada.password_changed_at,
        Some(Utc.with_ymd_and_hms(2024, 2, 1, 8, 0, 0).unwrap())
    );
    let grace = by("entra", "grace@example.test");
    assert_eq!(grace.mfa_enrolled, Some(false));
    assert_eq!(grace.login.as_deref(), Some("grace@example.test"));

    assert_eq!(by("google", "ada@example.test").mfa_enrolled, Some(true));
    assert_eq!(by("google", "grace@example.test").mfa_enrolled, Some(false));

    assert_eq!(by("duo", "ada@example.test").mfa_enrolled, Some(true));
    assert_eq!(
        by("duo", "grace@example.test").mfa_enrolled,
        Some(false),
        "bypass counts as not enrolled"
    );
    assert_eq!(by("duo", "linus").mfa_enrolled, Some(false));

    let listed: Vec<Value> = t
        .get_admin(&viewer, "/api/v1/admin/identity-sources")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|h| h["last_success_at"].is_string()));

    // A source that starts failing says why and keeps what it knew.
    let broken = TestServer::start_with(Arc::clone(&db), |c| {
        c.identity_sources = sources(&okta, &graph, &google, &duo, "revoked-token");
    })
    .await;
    let health = broken.app().poll_identity_sources().await.unwrap();
    let okta_health = &health[0];
    assert!(
        okta_health.last_error.as_deref().unwrap().contains("401"),
        "{okta_health:?}"
    );
    let listed: Vec<Value> = t
        .get_admin(&viewer, "/api/v1/admin/identity-sources")
        .await
        .json()
        .await
        .unwrap();
    let okta_listed = listed.iter().find(|h| h["name"] == "okta").unwrap();
    assert!(okta_listed["last_error"].as_str().unwrap().contains("401"));
    assert!(
        okta_listed["last_success_at"].is_string(),
        "the last success is kept"
    );
    assert_eq!(okta_listed["users"], 2);
    assert_eq!(t.count("identities").await, 9);
}
