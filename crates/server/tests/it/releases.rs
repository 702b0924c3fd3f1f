//! Release signatures: keys and signatures made by the Tauri CLI's own signer
//! (`tauri signer generate|sign`, from the frontend's npm packages) are checked with the
//! verification the Tauri updater performs before installing an update.

use std::path::{Path, PathBuf};
use std::process::Command;

use tandem_server::releases::{verify_signature, ReleaseError};

fn tauri_cli() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cli = root.join("ui/node_modules/.bin/tauri");
    assert!(
        cli.exists(),
        "{} is missing: `cargo xtask deps` installs the frontend's npm packages",
        cli.display()
    );
    cli
}

/// A fresh updater key pair (no password): (private key path, public key as Tauri has it).
fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let out = Command::new(tauri_cli())
        .args(["signer", "generate", "--ci", "-p", "", "-w"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap();
    (key, public)
}

fn sign(key: &Path, artifact: &Path) -> String {
    let out = Command::new(tauri_cli())
        .args(["signer", "sign", "-p", "", "-f"])
        .arg(key)
        .arg(artifact)
        .env("TAURI_SIGNING_PRIVATE_KEY_PASSWORD", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sig = artifact.with_extension(format!(
        "{}.sig",
        artifact.extension().unwrap().to_string_lossy()
    ));
    std::fs::read_to_string(sig).unwrap()
}

#[test]
fn a_tauri_signed_artifact_verifies_and_tampering_or_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "updater.key");
    let (_, other_public) = keypair(dir.path(), "other.key");
    let artifact = dir.path().join("tandem_0.2.0_amd64.AppImage.tar.gz");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&artifact, &bytes).unwrap();
    let signature = sign(&key, &artifact);

    assert_eq!(verify_signature(&public, &bytes, &signature), Ok(()));

    let mut tampered = bytes.clone();
    tampered[1234] ^= 1;
    assert_eq!(
        verify_signature(&public, &tampered, &signature),
        Err(ReleaseError::SignatureMismatch)
    );
    assert_eq!(
        verify_signature(&other_public, &bytes, &signature),
        Err(ReleaseError::SignatureMismatch)
    );
    assert_eq!(
        verify_signature(&public, &bytes, "bm90IGEgc2lnbmF0dXJl"),
        Err(ReleaseError::BadSignature)
    );
}

// The release API over HTTP: uploads checked against the configured key, channels per
// group, and the updater endpoint agents and the desktop app ask.

mod api {
    use reqwest::multipart::{Form, Part};
    use reqwest::StatusCode;
    use serde_json::{json, Value};
    use sha2::{Digest as _, Sha256};
    use tandem_proto::v1;
    use tandem_server::Role;

    use super::{keypair, sign};
    use crate::support::{problem, Backend, TestDb, TestServer};

    on_both_backends!(releases_are_verified_stored_offered_per_channel_and_served);

    fn form(version: &str, target: &str, channel: &str, signature: &str, bytes: &[u8]) -> Form {
        Form::new()
            .text("version", version.to_owned())
            .text("target", target.to_owned())
            .text("channel", channel.to_owned())
            .text("signature", signature.to_owned())
            .text("notes", format!("Tandem {version}"))
            .part("artifact", Part::bytes(bytes.to_vec()).file_name("tandem"))
    }

    async fn upload(t: &TestServer, token: &str, form: Form) -> reqwest::Response {
        t.http
            .post(t.url(v1::PATH_ADMIN_RELEASES))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    async fn ask(t: &TestServer, device: &str, target: &str, current: &str) -> reqwest::Response {
        t.http
            .get(t.url(v1::PATH_UPDATE))
            .query(&[("target", target), ("current_version", current)])
            .bearer_auth(device)
            .send()
            .await
            .unwrap()
    }

    async fn set_channel(t: &TestServer, token: &str, group: &str, channel: &str) -> StatusCode {
        t.http
            .put(t.url(&v1::PATH_ADMIN_GROUP_CHANNEL.replace("{group}", group)))
            .bearer_auth(token)
            .json(&json!({ "channel": channel }))
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn releases_are_verified_stored_offered_per_channel_and_served(backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = keypair(dir.path(), "updater.key");
        let (other_key, _) = keypair(dir.path(), "other.key");
        let stable = dir.path().join("tandem-0.2.0.bin");
        let stable_bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&stable, &stable_bytes).unwrap();
        let stable_sig = sign(&key, &stable);
        let forged = dir.path().join("forged.bin");
        std::fs::write(&forged, &stable_bytes).unwrap();
        let forged_sig = sign(&other_key, &forged);
        let beta = dir.path().join("tandem-0.3.0.bin");
        let beta_bytes = b"the beta build".repeat(1000);
        std::fs::write(&beta, &beta_bytes).unwrap();
        let beta_sig = sign(&key, &beta);

        let db = std::sync::Arc::new(TestDb::new(backend).await);
        let t = TestServer::start_with(db, |c| c.updater_public_key = Some(public.clone())).await;
        let admin = t.api_token(Role::Admin).await;
        let viewer = t.api_token(Role::Viewer).await;
        let target = "cli-linux-x86_64";

        // A viewer may not upload; a signature by another key is refused and stores nothing.
        let r = upload(
            &t,
            &viewer,
            form("0.2.0", target, "stable", &stable_sig, &stable_bytes),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = upload(
            &t,
            &admin,
            form("0.2.0", target, "stable", &forged_sig, &stable_bytes),
        )
        .await;
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(p["detail"].as_str().unwrap().contains("signature"), "{p}");
        let mut tampered = stable_bytes.clone();
        tampered[77] ^= 0x40;
        let r = upload(
            &t,
            &admin,
            form("0.2.0", target, "stable", &stable_sig, &tampered),
        )
        .await;
        problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(t.count("releases").await, 0);
        assert_eq!(t.count("release_artifacts").await, 0);

        // A good one is stored under its hash, once.
        let r = upload(
            &t,
            &admin,
            form("0.2.0", target, "stable", &stable_sig, &stable_bytes),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let stored: Value = r.json().await.unwrap();
        let sha = hex::encode(Sha256::digest(&stable_bytes));
        assert_eq!(stored["sha256"], sha.as_str());
        assert_eq!(stored["size"], stable_bytes.len());
        let r = upload(
            &t,
            &admin,
            form("0.2.0", target, "stable", &stable_sig, &stable_bytes),
        )
        .await;
        problem(r, StatusCode::CONFLICT).await;
        let r = upload(
            &t,
            &admin,
            form("0.3.0", target, "beta", &beta_sig, &beta_bytes),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);

        // A device of group `eng` follows `stable` until IT picks another channel.
        let device = t.enroll("eng", "m-upd").await.device_token;
        let r = ask(&t, &device, target, "0.1.0").await;
        assert_eq!(r.status(), StatusCode::OK);
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["version"], "0.2.0");
        assert_eq!(answer["signature"], stable_sig.trim());
        assert_eq!(answer["notes"], "Tandem 0.2.0");
        chrono::DateTime::parse_from_rfc3339(answer["pub_date"].as_str().unwrap()).unwrap();
        let url = answer["url"].as_str().unwrap().to_owned();
        assert_eq!(
            url,
            t.url(&v1::PATH_UPDATE_ARTIFACT.replace("{sha256}", &sha)),
            "{answer}"
        );
        assert_eq!(
            ask(&t, &device, target, "0.2.0").await.status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            ask(&t, &device, target, "1.0.0").await.status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            ask(&t, &device, "linux-x86_64", "0.1.0").await.status(),
            StatusCode::NO_CONTENT,
            "nothing was uploaded for the desktop bundle"
        );
        let r = ask(&t, &device, "plan9-mips", "0.1.0").await;
        problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        let r = ask(&t, "not-a-token", target, "0.1.0").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

        // The artifact by its hash, as often as asked, and only to a device.
        for _ in 0..2 {
            let r = t.http.get(&url).bearer_auth(&device).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let cache = r.headers()["cache-control"].to_str().unwrap().to_owned();
            assert!(cache.contains("immutable"), "{cache}");
            assert_eq!(r.bytes().await.unwrap().as_ref(), &stable_bytes[..]);
        }
        let r = t.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let missing = t.url(&v1::PATH_UPDATE_ARTIFACT.replace("{sha256}", &"0".repeat(64)));
        let r = t
            .http
            .get(missing)
            .bearer_auth(&device)
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::NOT_FOUND).await;

        // IT moves `eng` to beta: its devices are offered 0.3.0 from their next check.
        assert_eq!(
            set_channel(&t, &viewer, "eng", "beta").await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            set_channel(&t, &admin, "nope", "beta").await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            set_channel(&t, &admin, "eng", "Beta!").await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(set_channel(&t, &admin, "eng", "beta").await, StatusCode::OK);
        let answer: Value = ask(&t, &device, target, "0.2.0")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["version"], "0.3.0");
        assert_eq!(answer["signature"], beta_sig.trim());

        // Both changes are in the audit log, and the listing shows both releases.
        let audit: Value = t
            .get_admin(&viewer, "/api/v1/admin/audit")
            .await
            .json()
            .await
            .unwrap();
        let actions: Vec<(&str, &str)> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
            .collect();
        assert!(
            actions.contains(&("release.create", "release:stable/cli-linux-x86_64/0.2.0")),
            "{actions:?}"
        );
        assert!(
            actions.contains(&("group.channel", "group:eng")),
            "{actions:?}"
        );
        assert_eq!(
            actions
                .iter()
                .filter(|(a, _)| *a == "release.create")
                .count(),
            2,
            "refused uploads are not audited: {actions:?}"
        );
        let list: Value = t
            .get_admin(&viewer, v1::PATH_ADMIN_RELEASES)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    }

    #[tokio::test]
    async fn without_an_updater_key_uploads_are_refused() {
        let t = TestServer::start(Backend::Sqlite).await;
        let admin = t.api_token(Role::Admin).await;
        let r = upload(
            &t,
            &admin,
            form("0.2.0", "linux-x86_64", "stable", "c2ln", b"x"),
        )
        .await;
        let p = problem(r, StatusCode::CONFLICT).await;
        assert!(p["detail"].as_str().unwrap().contains("updater"), "{p}");
        assert_eq!(t.count("releases").await, 0);
    }
}

// The console's releases page: the same checks as the API, behind the console's session,
// role and CSRF token.

mod console_page {
    use reqwest::multipart::{Form, Part};
    use reqwest::StatusCode;
    use serde_json::Value;
    use tandem_server::Role;

    use super::{keypair, sign};
    use crate::console::signed_in;
    use crate::support::{Backend, TestDb, TestServer};

    on_both_backends!(the_releases_page_uploads_verified_releases_and_sets_channels);

    fn form(csrf: Option<&str>, version: &str, signature: &str, notes: &str, bytes: &[u8]) -> Form {
        let form = Form::new()
            .text("version", version.to_owned())
            .text("target", "cli-linux-x86_64")
            .text("channel", "stable")
            .text("signature", signature.to_owned())
            .text("notes", notes.to_owned())
            .part("artifact", Part::bytes(bytes.to_vec()).file_name("tandem"));
        match csrf {
            Some(token) => form.text("csrf", token.to_owned()),
            None => form,
        }
    }

    async fn the_releases_page_uploads_verified_releases_and_sets_channels(backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = keypair(dir.path(), "updater.key");
        let (other_key, _) = keypair(dir.path(), "other.key");
        let artifact = dir.path().join("tandem-0.4.0.bin");
        let bytes = b"tandem 0.4.0".repeat(5000);
        std::fs::write(&artifact, &bytes).unwrap();
        let good = sign(&key, &artifact);
        let forged = sign(&other_key, &artifact);
        let key_id = tandem_server::releases::public_key_id(&public).unwrap();

        let db = std::sync::Arc::new(TestDb::new(backend).await);
        let t = TestServer::start_with(db, |c| c.updater_public_key = Some(public.clone())).await;
        t.enroll("eng", "m-rel").await;
        let mut admin = signed_in(&t, "root", Role::Admin).await;
        let mut viewer = signed_in(&t, "val", Role::Viewer).await;
        let csrf = admin.csrf("/console/releases").await;
        let html = admin.get("/console/releases").await.text().await.unwrap();
        assert!(html.contains("No release uploaded yet"), "{html}");
        assert!(
            html.contains(&key_id),
            "the page names the updater key: {html}"
        );

        // A viewer sees the page without the forms and cannot upload.
        let html = viewer.get("/console/releases").await.text().await.unwrap();
        assert!(!html.contains("upload-form"), "{html}");
        let viewer_csrf = viewer.csrf("/console").await;
        let r = viewer
            .post_multipart(
                "/console/releases",
                form(Some(&viewer_csrf), "0.4.0", &good, "", &bytes),
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // Without the CSRF token, or with another key's signature, nothing is stored.
        let r = admin
            .post_multipart("/console/releases", form(None, "0.4.0", &good, "", &bytes))
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = admin
            .post_multipart(
                "/console/releases",
                form(Some(&csrf), "0.4.0", &forged, "", &bytes),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Release refused: the signature does not match this artifact and key"),
            "{html}"
        );
        assert_eq!(t.count("releases").await, 0);

        // A good upload is stored, its notes shown as text, its signature by the current key.
        let notes = "<script>alert(1)</script> fixes";
        let r = admin
            .post_multipart(
                "/console/releases",
                form(Some(&csrf), "0.4.0", &good, notes, &bytes),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Release 0.4.0 for cli-linux-x86_64 is on channel stable"),
            "{html}"
        );
        assert!(html.contains(&format!("ok · {key_id}")), "{html}");
        assert!(!html.contains("<script>alert"), "notes are escaped: {html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62; fixes"),
            "{html}"
        );
        assert_eq!(t.count("releases").await, 1);

        // The group's channel, set from the page; a bad name is refused with a message.
        let r = admin
            .post(
                "/console/releases/channel",
                &[("csrf", &csrf), ("group", "eng"), ("channel", "Beta!")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = admin
            .post(
                "/console/releases/channel",
                &[("csrf", &csrf), ("group", "nope"), ("channel", "beta")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = admin
            .post(
                "/console/releases/channel",
                &[("csrf", &csrf), ("group", "eng"), ("channel", "beta")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let html = admin.get("/console/releases").await.text().await.unwrap();
        assert!(html.contains(r#"value="beta""#), "{html}");

        // Both changes are audited as the console account.
        let token = t.api_token(Role::Viewer).await;
        let audit: Value = t
            .get_admin(&token, "/api/v1/admin/audit")
            .await
            .json()
            .await
            .unwrap();
        let rows: Vec<(String, String)> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["actor"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for action in ["release.create", "group.channel"] {
            assert!(
                rows.iter()
                    .any(|(a, by)| a == action && by.contains("root")),
                "{action} by root missing: {rows:?}"
            );
        }
    }
}
