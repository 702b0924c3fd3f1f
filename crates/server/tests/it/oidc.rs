//! OpenID Connect sign-in to the console against a fake identity provider served by axum in
//! the test: discovery, JWKS, an authorize endpoint that sends the browser straight back
//! with a code, and a token endpoint that checks the client secret and the PKCE verifier
//! and answers an RS256 ID token signed with a test key. Run on both backends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use ring::rand::SystemRandom;
use ring::signature as sig;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tandem_server::config::OidcConfig;
use tandem_server::{Clock as _, Role};

use crate::console::Browser;
use crate::support::{Backend, TestDb, TestServer};

const CLIENT_ID: &str = "tandem-console";
const CLIENT_SECRET: &str = "fake-idp-client-secret";
/// The redirect URI's host; the test hands the callback to the real server itself.
const PUBLIC_URL: &str = "https://tandem.test";

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn rsa(pem: &str) -> Arc<sig::RsaKeyPair> {
    Arc::new(sig::RsaKeyPair::from_pkcs8(&pem_der(pem)).unwrap())
}

fn key_a() -> Arc<sig::RsaKeyPair> {
    rsa(include_str!("../../test-data/oidc/rsa-a.pem"))
}

fn key_b() -> Arc<sig::RsaKeyPair> {
    rsa(include_str!("../../test-data/oidc/rsa-b.pem"))
}

fn jwk(kid: &str, pair: &sig::RsaKeyPair) -> Value {
    let c = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e)})
}

/// Who the provider signs in next, and how.
#[derive(Clone)]
struct Person {
    sub: String,
    email: String,
    email_verified: bool,
    /// Microsoft Entra's object id claim, when the provider plays Entra.
    oid: Option<String>,
}

/// A pending code: what the authorize request asked for.
struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
    person: Person,
}

struct Idp {
    issuer: String,
    /// The issuer the discovery document names (the configured one unless a test lies).
    advertised_issuer: Mutex<String>,
    person: Mutex<Person>,
    /// The key ID tokens are signed with, and the keys the JWKS publishes.
    signing: Mutex<(String, Arc<sig::RsaKeyPair>)>,
    published: Mutex<Vec<(String, Arc<sig::RsaKeyPair>)>>,
    jwks_fetches: Mutex<u32>,
    token_requests: Mutex<u32>,
    grants: Mutex<HashMap<String, Grant>>,
    /// The server's clock, so that `iat`/`exp` are in the server's "now".
    clock: Mutex<Option<crate::support::TestClock>>,
    /// Seconds added to `exp` after `iat` (negative: already expired).
    lifetime: Mutex<i64>,
}

type Shared = Arc<Idp>;

async fn discovery(State(idp): State<Shared>) -> Json<Value> {
    let base = &idp.issuer;
    Json(json!({
        "issuer": *idp.advertised_issuer.lock().unwrap(),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(idp): State<Shared>) -> Json<Value> {
    *idp.jwks_fetches.lock().unwrap() += 1;
    let keys: Vec<Value> = idp
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|(kid, pair)| jwk(kid, pair))
        .collect();
    Json(json!({"keys": keys}))
}

async fn authorize(
    State(idp): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> AxumResponse {
    let param = |k: &str| q.get(k).cloned().unwrap_or_default();
    if param("response_type") != "code"
        || param("client_id") != CLIENT_ID
        || param("code_challenge_method") != "S256"
        || param("code_challenge").len() != 43
        || !param("scope").split(' ').any(|s| s == "openid")
        || param("state").is_empty()
        || param("nonce").is_empty()
    {
        return (AxumStatus::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = URL_SAFE_NO_PAD.encode(uuid::Uuid::now_v7().as_bytes());
    let redirect_uri = param("redirect_uri");
    idp.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            nonce: param("nonce"),
            challenge: param("code_challenge"),
            redirect_uri: redirect_uri.clone(),
            person: idp.person.lock().unwrap().clone(),
        },
    );
    let to = format!(
        "{redirect_uri}?code={code}&state={}",
        urlencode(&param("state"))
    );
    (AxumStatus::SEE_OTHER, [("location", to)]).into_response()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn invalid_grant(why: &str) -> AxumResponse {
    (
        AxumStatus::BAD_REQUEST,
        Json(json!({"error": "invalid_grant", "error_description": why})),
    )
        .into_response()
}

async fn token(
    State(idp): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> AxumResponse {
    *idp.token_requests.lock().unwrap() += 1;
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (
            AxumStatus::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    if field("grant_type") != "authorization_code" {
        return invalid_grant("grant_type");
    }
    // Codes are single-use.
    let Some(grant) = idp.grants.lock().unwrap().remove(&field("code")) else {
        return invalid_grant("unknown code");
    };
    if field("redirect_uri") != grant.redirect_uri {
        return invalid_grant("redirect_uri");
    }
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if challenge != grant.challenge {
        return invalid_grant("PKCE verifier does not match the challenge");
    }
    let now = idp
        .clock
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .now()
        .timestamp();
    let lifetime = *idp.lifetime.lock().unwrap();
    let claims = json!({
        "iss": idp.issuer, "aud": CLIENT_ID, "sub": grant.person.sub,
        "email": grant.person.email, "email_verified": grant.person.email_verified,
        "nonce": grant.nonce, "iat": now, "exp": now + lifetime, "amr": ["pwd", "mfa"],
        "oid": grant.person.oid,
    });
    let (kid, pair) = idp.signing.lock().unwrap().clone();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT", "kid": kid}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &sig::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    let id_token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
    Json(json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
        .into_response()
}

async fn start_idp() -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let a = key_a();
    let idp = Arc::new(Idp {
        advertised_issuer: Mutex::new(issuer.clone()),
        issuer,
        person: Mutex::new(Person {
            sub: "00u-alice".into(),
            email: "alice@example.com".into(),
            email_verified: true,
            oid: None,
        }),
        signing: Mutex::new(("a".into(), Arc::clone(&a))),
        published: Mutex::new(vec![("a".into(), a)]),
        jwks_fetches: Mutex::new(0),
        token_requests: Mutex::new(0),
        grants: Mutex::new(HashMap::new()),
        clock: Mutex::new(None),
        lifetime: Mutex::new(300),
    });
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(Arc::clone(&idp));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    idp
}

/// A console server configured for the fake provider.
async fn start(backend: Backend) -> (TestServer, Shared) {
    let idp = start_idp().await;
    let server = server_for(&idp, backend).await;
    *idp.clock.lock().unwrap() = Some(server.clock.clone());
    (server, idp)
}

/// A console server, on a database of its own, that signs in through `idp`.
async fn server_for(idp: &Shared, backend: Backend) -> TestServer {
    let db = Arc::new(TestDb::new(backend).await);
    let issuer = idp.issuer.clone();
    TestServer::start_with(db, move |config| {
        config.public_url = Some(PUBLIC_URL.into());
        config.oidc = Some(OidcConfig {
            issuer,
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            display_name: "Fake IdP".into(),
            scopes: Vec::new(),
        });
    })
    .await
}

/// Start → provider → the callback URL the provider sends the browser to (its path and
/// query, for this server).
async fn via_provider(browser: &mut Browser) -> String {
    let start = browser.get("/console/oidc/start").await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let cookie = start
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tandem_console_oidc="))
        .unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/console/oidc"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let authorize = location(&start);
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(
        authorize.contains(&format!(
            "redirect_uri={}",
            urlencode(&format!("{PUBLIC_URL}/console/oidc/callback"))
        )),
        "{authorize}"
    );
    let back = browser.get(&authorize).await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER, "the provider answers");
    location(&back).strip_prefix(PUBLIC_URL).unwrap().to_owned()
}

/// A whole sign-in; returns the callback's answer.
async fn oidc_sign_in(browser: &mut Browser) -> reqwest::Response {
    let callback = via_provider(browser).await;
    browser.get(&callback).await
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

async fn admin(server: &TestServer, name: &str) -> uuid::Uuid {
    server
        .app()
        .create_console_admin(name, "correct horse battery staple", Role::Admin)
        .await
        .unwrap();
    server
        .app()
        .store()
        .console_admin_by_username(name)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn sign_in_audit(server: &TestServer) -> Vec<String> {
    server
        .db
        .column::<String>(
            "SELECT actor || ' ' || after FROM audit_log WHERE action = 'console.sign_in' ORDER BY id",
        )
        .await
}

async fn links_by_verified_email_then_signs_in_by_subject(backend: Backend) {
    let (server, idp) = start(backend).await;
    admin(&server, "alice@example.com").await;
    let admins = server.count("console_admins").await;

    let login = Browser::new(&server).get("/console/login").await;
    let html = login.text().await.unwrap();
    assert!(html.contains("Sign in with Fake IdP"), "{html}");
    assert!(html.contains("href=\"/console/oidc/start\""), "{html}");

    let mut browser = Browser::new(&server);
    let done = oidc_sign_in(&mut browser).await;
    assert_eq!(done.status(), StatusCode::OK);
    // The session cookie is the password sign-in's; the flow cookie is gone.
    assert!(browser.cookie("tandem_console").is_some());
    assert!(browser.cookie("tandem_console_oidc").is_none());
    let html = done.text().await.unwrap();
    assert!(
        html.contains("http-equiv=\"refresh\" content=\"0;url=/console\""),
        "{html}"
    );
    let fleet = browser.get("/console").await;
    assert_eq!(fleet.status(), StatusCode::OK);
    assert!(fleet.text().await.unwrap().contains("alice@example.com"));
    assert_eq!(server.count("console_oidc_links").await, 1);
    assert_eq!(server.count("console_admins").await, admins);
    let audit = sign_in_audit(&server).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(
        audit[0].starts_with("admin:alice@example.com "),
        "{audit:?}"
    );
    let entry: Value = serde_json::from_str(audit[0].split_once(' ').unwrap().1).unwrap();
    assert_eq!(entry["method"], "oidc");
    assert_eq!(entry["amr"], json!(["pwd", "mfa"]));
    assert_eq!(entry["linked"], true);

    // Signing out works as for a password session.
    let csrf = {
        let html = browser.get("/console").await.text().await.unwrap();
        let marker = "name=\"csrf\" value=\"";
        let start = html.find(marker).unwrap() + marker.len();
        html[start..].split('"').next().unwrap().to_owned()
    };
    let out = browser
        .post("/console/logout", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.count("console_sessions").await, 0);

    // Linked now: the subject signs in even after the provider's email changed.
    idp.person.lock().unwrap().email = "alice.renamed@example.com".into();
    let mut again = Browser::new(&server);
    assert_eq!(oidc_sign_in(&mut again).await.status(), StatusCode::OK);
    assert_eq!(again.get("/console").await.status(), StatusCode::OK);
    let audit = sign_in_audit(&server).await;
    assert_eq!(audit.len(), 2);
    let entry: Value = serde_json::from_str(audit[1].split_once(' ').unwrap().1).unwrap();
    assert_eq!(entry["linked"], false);
    // Discovery and keys were fetched once for both sign-ins.
    assert_eq!(*idp.jwks_fetches.lock().unwrap(), 1);
}

async fn unknown_unverified_disabled_and_foreign_accounts_are_refused(backend: Backend) {
    let (server, idp) = start(backend).await;
    let alice = admin(&server, "alice@example.com").await;
    let carol = admin(&server, "carol@example.com").await;
    let admins = server.count("console_admins").await;

    // Nobody by that email: a clear page, nothing created.
    *idp.person.lock().unwrap() = Person {
        sub: "00u-bob".into(),
        email: "bob@example.com".into(),
        email_verified: true,
        oid: None,
    };
    let mut bob = Browser::new(&server);
    let refused = oidc_sign_in(&mut bob).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(bob.cookie("tandem_console").is_none());
    let html = refused.text().await.unwrap();
    assert!(
        html.contains("No Tandem admin account for bob@example.com — ask an admin to create one"),
        "{html}"
    );
    assert_eq!(server.count("console_admins").await, admins);

    // An email the provider does not vouch for links nothing.
    *idp.person.lock().unwrap() = Person {
        sub: "00u-alice".into(),
        email: "alice@example.com".into(),
        email_verified: false,
        oid: None,
    };
    let mut unverified = Browser::new(&server);
    assert_eq!(
        oidc_sign_in(&mut unverified).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(server.count("console_oidc_links").await, 0);

    // A disabled account is refused.
    idp.person.lock().unwrap().email_verified = true;
    let by = tandem_server::store::ChangeBy {
        actor: "test".into(),
        at: server.clock.now(),
    };
    assert!(server
        .app()
        .store()
        .disable_console_admin(carol, &by)
        .await
        .unwrap());
    *idp.person.lock().unwrap() = Person {
        sub: "00u-carol".into(),
        email: "carol@example.com".into(),
        email_verified: true,
        oid: None,
    };
    let mut disabled = Browser::new(&server);
    assert_eq!(
        oidc_sign_in(&mut disabled).await.status(),
        StatusCode::FORBIDDEN
    );

    // A locked account (five failed password sign-ins) is refused too.
    for _ in 0..5 {
        server
            .app()
            .store()
            .console_login_failed(
                alice,
                tandem_server::store::console::SignInFailure::BadPassword,
                server.clock.now(),
                5,
                chrono::Duration::minutes(15),
            )
            .await
            .unwrap();
    }
    *idp.person.lock().unwrap() = Person {
        sub: "00u-alice".into(),
        email: "alice@example.com".into(),
        email_verified: true,
        oid: None,
    };
    let mut locked = Browser::new(&server);
    let refused = oidc_sign_in(&mut locked).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("disabled or locked"));
    server.clock.advance(chrono::Duration::minutes(16));
    let mut unlocked = Browser::new(&server);
    assert_eq!(oidc_sign_in(&mut unlocked).await.status(), StatusCode::OK);
    assert_eq!(server.count("console_oidc_links").await, 1);

    // Another provider account claiming the same (verified) email cannot take over the
    // account already linked to alice's subject.
    idp.person.lock().unwrap().sub = "00u-impostor".into();
    let mut impostor = Browser::new(&server);
    let refused = oidc_sign_in(&mut impostor).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("linked to another account"));
    assert_eq!(server.count("console_oidc_links").await, 1);
    assert_eq!(server.count("console_sessions").await, 1);
}

async fn a_mismatched_state_or_missing_flow_signs_nobody_in(backend: Backend) {
    let (server, idp) = start(backend).await;
    admin(&server, "alice@example.com").await;

    // The victim's browser gets the attacker's callback (login CSRF): its state is not
    // this browser's, so the code is never redeemed.
    let mut attacker = Browser::new(&server);
    let attackers_callback = via_provider(&mut attacker).await;
    let mut victim = Browser::new(&server);
    via_provider(&mut victim).await;
    let answer = victim.get(&attackers_callback).await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert!(answer.text().await.unwrap().contains("state mismatch"));
    assert!(victim.cookie("tandem_console").is_none());
    // Without the flow cookie at all (another browser, or expired).
    let mut stranger = Browser::new(&server);
    let answer = stranger.get(&attackers_callback).await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert!(answer.text().await.unwrap().contains("expired"));
    assert_eq!(*idp.token_requests.lock().unwrap(), 0);
    // A flow older than ten minutes has expired.
    let mut slow = Browser::new(&server);
    let callback = via_provider(&mut slow).await;
    server.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(slow.get(&callback).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(*idp.token_requests.lock().unwrap(), 0);
    server.clock.advance(chrono::Duration::minutes(-11));
    // The provider's own refusal (with this browser's state) is shown as text.
    let mut denied = Browser::new(&server);
    let callback = via_provider(&mut denied).await;
    let state = callback.split("state=").nth(1).unwrap().to_owned();
    let answer = denied
        .get(&format!(
            "/console/oidc/callback?error=access_denied&error_description=%3Cb%3Enope%3C%2Fb%3E&state={state}"
        ))
        .await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let html = answer.text().await.unwrap();
    assert!(
        html.contains("did not sign you in: &#60;b&#62;nope"),
        "{html}"
    );
    assert!(!html.contains("<b>nope"), "{html}");
    assert_eq!(*idp.token_requests.lock().unwrap(), 0);
    assert_eq!(server.count("console_sessions").await, 0);

    // The attacker's own browser still completes its sign-in.
    assert_eq!(
        attacker.get(&attackers_callback).await.status(),
        StatusCode::OK
    );
}

async fn an_expired_id_token_and_a_lying_discovery_document_are_refused(backend: Backend) {
    let (server, idp) = start(backend).await;
    admin(&server, "alice@example.com").await;
    *idp.lifetime.lock().unwrap() = -120;
    let mut browser = Browser::new(&server);
    let refused = oidc_sign_in(&mut browser).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("expired"));
    assert_eq!(server.count("console_sessions").await, 0);

    // A discovery document naming another issuer is refused (the first fetch of this new
    // server happens at the start).
    *idp.lifetime.lock().unwrap() = 300;
    *idp.advertised_issuer.lock().unwrap() = "https://accounts.example.com".into();
    let other = server_for(&idp, backend).await;
    let start = Browser::new(&other).get("/console/oidc/start").await;
    assert_eq!(start.status(), StatusCode::BAD_GATEWAY);
}

async fn a_rotated_signing_key_is_fetched_once(backend: Backend) {
    let (server, idp) = start(backend).await;
    admin(&server, "alice@example.com").await;
    assert_eq!(
        oidc_sign_in(&mut Browser::new(&server)).await.status(),
        StatusCode::OK
    );
    assert_eq!(*idp.jwks_fetches.lock().unwrap(), 1);

    // The provider rotates to key b and publishes both.
    let b = key_b();
    idp.published
        .lock()
        .unwrap()
        .push(("b".into(), Arc::clone(&b)));
    *idp.signing.lock().unwrap() = ("b".into(), b);
    assert_eq!(
        oidc_sign_in(&mut Browser::new(&server)).await.status(),
        StatusCode::OK
    );
    assert_eq!(*idp.jwks_fetches.lock().unwrap(), 2);
    assert_eq!(
        oidc_sign_in(&mut Browser::new(&server)).await.status(),
        StatusCode::OK
    );
    assert_eq!(*idp.jwks_fetches.lock().unwrap(), 2, "b is cached now");

    // A token signed with a key the provider never published: one refetch, then refused.
    *idp.signing.lock().unwrap() = ("c".into(), key_a());
    let refused = oidc_sign_in(&mut Browser::new(&server)).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(*idp.jwks_fetches.lock().unwrap(), 3);
}

/// The `console_admin.oidc_*` audit rows: actor, action, before and after.
async fn link_audit(server: &TestServer) -> Vec<(String, String, Value, Value)> {
    server
        .db
        .column::<String>(
            "SELECT actor || '|' || action || '|' || COALESCE(before, 'null') || '|'
                    || COALESCE(after, 'null')
             FROM audit_log WHERE action LIKE 'console_admin.oidc%' ORDER BY id",
        )
        .await
        .into_iter()
        .map(|row| {
            let mut parts = row.splitn(4, '|');
            let mut next = || parts.next().unwrap().to_owned();
            let (actor, action) = (next(), next());
            let before = serde_json::from_str(&next()).unwrap();
            (
                actor,
                action,
                before,
                serde_json::from_str(&next()).unwrap(),
            )
        })
        .collect()
}

/// Microsoft Entra sends no `email_verified`: an admin links the person's subject by hand
/// on the admins page, and that subject then signs in; unlinked, it no longer does.
async fn an_admin_links_a_subject_by_hand_for_providers_without_verified_email(backend: Backend) {
    let (server, idp) = start(backend).await;
    let alice = admin(&server, "alice@example.com").await;
    let bob = admin(&server, "bob@example.com").await;
    *idp.person.lock().unwrap() = Person {
        sub: "entra-oid-1111".into(),
        email: "alice@example.com".into(),
        email_verified: false,
        oid: None,
    };
    assert_eq!(
        oidc_sign_in(&mut Browser::new(&server)).await.status(),
        StatusCode::FORBIDDEN
    );

    // A viewer sees the links but cannot make one.
    let mut viewer = crate::console::signed_in(&server, "val", Role::Viewer).await;
    let html = viewer.get("/console/admins").await.text().await.unwrap();
    assert!(!html.contains("Link identity"), "{html}");
    let csrf = viewer.csrf("/console/admins").await;
    let link_path = format!("/console/admins/{alice}/oidc/link");
    let response = viewer
        .post(
            &link_path,
            &[("csrf", &csrf), ("subject", "entra-oid-1111")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(server.count("console_oidc_links").await, 0);

    // An admin links it (the form takes the configured issuer).
    let mut root = crate::console::signed_in(&server, "root", Role::Admin).await;
    let html = root.get("/console/admins").await.text().await.unwrap();
    assert!(html.contains("Link identity"), "{html}");
    assert!(html.contains(&idp.issuer), "{html}");
    let csrf = root.csrf("/console/admins").await;
    // Without the CSRF token: refused.
    let response = root
        .post(&link_path, &[("subject", "entra-oid-1111")])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = root
        .post(
            &link_path,
            &[("csrf", &csrf), ("subject", " entra-oid-1111 ")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.count("console_oidc_links").await, 1);
    let html = root.get("/console/admins").await.text().await.unwrap();
    assert!(
        html.contains("<code>entra-oid-1111</code>") && html.contains("Unlink"),
        "{html}"
    );
    let audit = link_audit(&server).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "admin:root");
    assert_eq!(audit[0].1, "console_admin.oidc_link");
    assert_eq!(audit[0].2, Value::Null);
    assert_eq!(audit[0].3["issuer"], idp.issuer.as_str());
    assert_eq!(audit[0].3["subject"], "entra-oid-1111");

    // That subject now signs in, without a verified email.
    let mut browser = Browser::new(&server);
    assert_eq!(oidc_sign_in(&mut browser).await.status(), StatusCode::OK);
    let fleet = browser.get("/console").await;
    assert_eq!(fleet.status(), StatusCode::OK);
    assert!(fleet.text().await.unwrap().contains("alice@example.com"));
    // (After the password sign-ins of val and root.)
    let signed = sign_in_audit(&server).await;
    assert_eq!(signed.len(), 3, "{signed:?}");
    assert!(
        signed[2].starts_with("admin:alice@example.com ")
            && signed[2].contains("\"method\":\"oidc\""),
        "{signed:?}"
    );

    // The same subject cannot be linked to a second account.
    let response = root
        .post(
            &format!("/console/admins/{bob}/oidc/link"),
            &[("csrf", &csrf), ("subject", "entra-oid-1111")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("linked to another account already"));
    // Nor an empty or control-character subject.
    for subject in ["", "a\u{7}b"] {
        let response = root
            .post(&link_path, &[("csrf", &csrf), ("subject", subject)])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("1 to 255 characters"));
    }
    assert_eq!(link_audit(&server).await.len(), 1);

    // Relinking replaces the link, audited with before and after.
    let response = root
        .post(
            &link_path,
            &[("csrf", &csrf), ("subject", "entra-oid-2222")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.count("console_oidc_links").await, 1);
    let audit = link_audit(&server).await;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1].2["subject"], "entra-oid-1111");
    assert_eq!(audit[1].3["subject"], "entra-oid-2222");
    assert_eq!(
        oidc_sign_in(&mut Browser::new(&server)).await.status(),
        StatusCode::FORBIDDEN,
        "the old subject no longer signs in"
    );

    // Unlinking: a viewer cannot; an admin can, and the subject is refused again.
    let unlink_path = format!("/console/admins/{alice}/oidc/unlink");
    let viewer_csrf = viewer.csrf("/console/admins").await;
    let response = viewer
        .post(
            &unlink_path,
            &[("csrf", &viewer_csrf), ("issuer", idp.issuer.as_str())],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(server.count("console_oidc_links").await, 1);
    let response = root
        .post(
            &unlink_path,
            &[("csrf", &csrf), ("issuer", idp.issuer.as_str())],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.count("console_oidc_links").await, 0);
    let audit = link_audit(&server).await;
    assert_eq!(audit.len(), 3);
    assert_eq!(audit[2].1, "console_admin.oidc_unlink");
    assert_eq!(audit[2].2["subject"], "entra-oid-2222");
    assert_eq!(audit[2].3, Value::Null);
    idp.person.lock().unwrap().sub = "entra-oid-2222".into();
    let refused = oidc_sign_in(&mut Browser::new(&server)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("No Tandem admin account is linked"));
    // Unlinking what is not linked is a 404.
    let response = root
        .post(
            &unlink_path,
            &[("csrf", &csrf), ("issuer", idp.issuer.as_str())],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Entra's object id, as its admin center shows it, links through the `oid` claim.
    const OBJECT_ID: &str = "7d3c0a3e-5b1f-4d6e-9a51-0f4e2b9c8d71";
    let response = root
        .post(
            &format!("/console/admins/{bob}/oidc/link"),
            &[("csrf", &csrf), ("claim", "oid"), ("subject", OBJECT_ID)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let html = root.get("/console/admins").await.text().await.unwrap();
    assert!(
        html.contains(&format!("<code>oid:{OBJECT_ID}</code>")),
        "{html}"
    );
    *idp.person.lock().unwrap() = Person {
        sub: "pairwise-sub-of-bob".into(),
        email: "bob@example.com".into(),
        email_verified: false,
        oid: Some(OBJECT_ID.into()),
    };
    let mut entra = Browser::new(&server);
    assert_eq!(oidc_sign_in(&mut entra).await.status(), StatusCode::OK);
    let fleet = entra.get("/console").await.text().await.unwrap();
    assert!(fleet.contains("bob@example.com"), "{fleet}");
    // An object-id link never matches a `sub` of that value.
    *idp.person.lock().unwrap() = Person {
        sub: OBJECT_ID.into(),
        email: "bob@example.com".into(),
        email_verified: false,
        oid: None,
    };
    assert_eq!(
        oidc_sign_in(&mut Browser::new(&server)).await.status(),
        StatusCode::FORBIDDEN
    );
}

on_both_backends!(
    an_admin_links_a_subject_by_hand_for_providers_without_verified_email,
    links_by_verified_email_then_signs_in_by_subject,
    unknown_unverified_disabled_and_foreign_accounts_are_refused,
    a_mismatched_state_or_missing_flow_signs_nobody_in,
    an_expired_id_token_and_a_lying_discovery_document_are_refused,
    a_rotated_signing_key_is_fetched_once,
);

#[tokio::test]
async fn without_configuration_the_routes_answer_404_and_the_button_is_absent() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut browser = Browser::new(&server);
    let html = browser.get("/console/login").await.text().await.unwrap();
    assert!(!html.contains("/console/oidc/start"), "{html}");
    for path in [
        "/console/oidc/start",
        "/console/oidc/callback?code=x&state=y",
    ] {
        assert_eq!(browser.get(path).await.status(), StatusCode::NOT_FOUND);
    }
}
