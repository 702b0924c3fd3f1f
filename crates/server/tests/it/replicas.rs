//! Several replicas on one PostgreSQL database: a policy stored through one wakes the
//! long-polls parked on another within a second (LISTEN/NOTIFY), and everything a replica
//! writes is visible to the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tandem_proto::v1::{self, SignedPolicy};
use tandem_server::Role;

use crate::support::{verify, Backend, TestDb, TestServer};

#[tokio::test]
async fn a_policy_put_through_replica_a_wakes_a_long_poll_on_replica_b() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let a = TestServer::start_on(Arc::clone(&db)).await;
    let b = TestServer::start_on(Arc::clone(&db)).await;
    assert_eq!(
        a.app().policy_signing_key(),
        b.app().policy_signing_key(),
        "replicas share one signing key"
    );

    // Enrolled through A, polling B: the device does not care which replica answers.
    let device = a.enroll("eng", "m1").await;
    let admin = a.api_token(Role::Admin).await;
    let current: SignedPolicy = b
        .get_policy(&device.device_token, None, 0)
        .await
        .json()
        .await
        .unwrap();

    let mut wakes = Vec::new();
    for round in 1..=3 {
        let etag = if round == 1 {
            current.etag.clone()
        } else {
            b.get_policy(&device.device_token, None, 0)
                .await
                .json::<SignedPolicy>()
                .await
                .unwrap()
                .etag
        };
        let poll = b.park_policy_poll(&device.device_token, &etag, 60).await;

        let pushed_at = Instant::now();
        let body = json!({"org": {"name": format!("Acme {round}")}});
        let put = a.put_policy(&admin, "eng", &body).await;
        assert_eq!(put.status(), StatusCode::OK);

        let (answered_at, response) = poll.await.unwrap();
        let latency = answered_at - pushed_at;
        assert_eq!(response.status(), StatusCode::OK);
        let signed: SignedPolicy = response.json().await.unwrap();
        assert_eq!((signed.group.as_str(), signed.version), ("eng", round));
        assert_eq!(signed.policy, body);
        verify(&signed, &device.policy_signing_key);
        wakes.push(latency);
    }
    eprintln!("replica A's policy PUT woke replica B's long-poll in {wakes:?}");
    for latency in wakes {
        assert!(
            latency < Duration::from_secs(1),
            "replica B woke after {latency:?}"
        );
    }

    // What B serves to admins reflects A's writes. Which version a device was sent is
    // written behind, in batches, so it shows within moments rather than at once.
    let viewer = b.api_token(Role::Viewer).await;
    let started = std::time::Instant::now();
    loop {
        let response = b.get_admin(&viewer, v1::PATH_ADMIN_DEVICES).await;
        let devices: Vec<serde_json::Value> = response.json().await.unwrap();
        assert_eq!(devices.len(), 1);
        if devices[0]["policy_version"] == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the delivered version never showed: {devices:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
