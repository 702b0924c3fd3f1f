//! The admin API: roles, the device list, policy validation.

use reqwest::StatusCode;
use serde_json::json;
use tandem_proto::v1::{self, problem, AdminDevice, PolicyVersion, SignedPolicy};
use tandem_proto::{CheckId, Status};
use tandem_server::Role;

use crate::support::{problem, sample_report, verify, Backend, TestServer};

on_both_backends!(
    the_device_list_shows_the_latest_report,
    the_admin_api_needs_a_valid_token_and_the_right_role,
    an_invalid_policy_is_refused_naming_the_setting,
    policy_versions_count_up_and_an_identical_push_is_not_a_new_version,
    an_admin_reads_a_groups_effective_policy,
);

async fn the_device_list_shows_the_latest_report(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("eng", "m1").await;
    let _idle = t.enroll("default", "m2").await;
    let viewer = t.api_token(Role::Viewer).await;
    assert_eq!(
        t.post_report(&device.device_token, &sample_report("m1"))
            .await
            .status(),
        202
    );

    let response = t
        .http
        .get(t.url(v1::PATH_ADMIN_DEVICES))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let devices: Vec<AdminDevice> = response.json().await.unwrap();
    assert_eq!(devices.len(), 2);
    let d = devices.iter().find(|d| d.id == device.device_id).unwrap();
    assert_eq!(
        (d.hostname.as_str(), d.group.as_str(), d.user_login.as_str()),
        ("host-m1", "eng", "ada")
    );
    assert!(d.last_report_at.is_some());
    let statuses: Vec<_> = d.results.iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(
        statuses,
        [
            (CheckId::OsUpdates, Status::Fail),
            (CheckId::Firewall, Status::Pass)
        ]
    );
    let idle = devices.iter().find(|d| d.id != device.device_id).unwrap();
    assert!(idle.last_report_at.is_none() && idle.results.is_empty());
}

async fn the_admin_api_needs_a_valid_token_and_the_right_role(backend: Backend) {
    let t = TestServer::start(backend).await;
    let viewer = t.api_token(Role::Viewer).await;
    let policy = json!({"org": {"name": "Acme"}});

    let response = t
        .http
        .get(t.url(v1::PATH_ADMIN_DEVICES))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["type"], problem::UNAUTHORIZED);
    let response = t
        .http
        .get(t.url(v1::PATH_ADMIN_DEVICES))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::UNAUTHORIZED).await;

    // A device token is not an API token.
    let device = t.enroll("default", "m1").await;
    let response = t
        .http
        .get(t.url(v1::PATH_ADMIN_DEVICES))
        .bearer_auth(&device.device_token)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::UNAUTHORIZED).await;

    let body = problem(
        t.put_policy(&viewer, "eng", &policy).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body["type"], problem::FORBIDDEN);
    assert_eq!(t.count("policies").await, 0);
}

async fn an_invalid_policy_is_refused_naming_the_setting(backend: Backend) {
    let t = TestServer::start(backend).await;
    let admin = t.api_token(Role::Admin).await;

    let typo = json!({"checks": {"os_updates": {"grace_day": 3}}});
    let body = problem(
        t.put_policy(&admin, "eng", &typo).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["type"], problem::INVALID_POLICY);
    assert_eq!(body["pointer"], "/checks/os_updates/grace_day");

    let wrong = json!({"intervals": {"check_minutes": "often"}});
    problem(
        t.put_policy(&admin, "eng", &wrong).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let bad_group = t.put_policy(&admin, "no%20spaces", &json!({})).await;
    problem(bad_group, StatusCode::UNPROCESSABLE_ENTITY).await;

    let response = t
        .http
        .put(t.url("/api/v1/admin/groups/eng/policy"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"org\": ")
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(t.count("policies").await, 0);
}

async fn policy_versions_count_up_and_an_identical_push_is_not_a_new_version(backend: Backend) {
    let t = TestServer::start(backend).await;
    let admin = t.api_token(Role::Admin).await;
    let (t, admin) = (&t, &admin);
    let put = |body| async move {
        let response = t.put_policy(admin, "eng", &body).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<PolicyVersion>().await.unwrap()
    };
    let v1 = put(json!({"org": {"name": "A"}})).await;
    let v2 = put(json!({"org": {"name": "B"}})).await;
    let again = put(json!({"org": {"name": "B"}})).await;
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(again, v2);
    assert_ne!(v1.etag, v2.etag);
    assert_eq!(t.count("policies").await, 2);
}

async fn an_admin_reads_a_groups_effective_policy(backend: Backend) {
    let t = TestServer::start(backend).await;
    let admin = t.api_token(Role::Admin).await;
    let viewer = t.api_token(Role::Viewer).await;
    let get = |group: &str| {
        t.http
            .get(t.url(&format!("/api/v1/admin/groups/{group}/policy")))
            .bearer_auth(&viewer)
            .send()
    };
    problem(get("nobody").await.unwrap(), StatusCode::NOT_FOUND).await;

    let response = get("default").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let builtin: SignedPolicy = response.json().await.unwrap();
    assert_eq!(builtin.version, 0);
    verify(&builtin, &t.app().policy_signing_key());

    assert_eq!(
        t.put_policy(&admin, "eng", &json!({"org": {"name": "Eng"}}))
            .await
            .status(),
        200
    );
    let eng: SignedPolicy = get("eng").await.unwrap().json().await.unwrap();
    assert_eq!((eng.group.as_str(), eng.version), ("eng", 1));
    assert_eq!(eng.policy, json!({"org": {"name": "Eng"}}));
}
