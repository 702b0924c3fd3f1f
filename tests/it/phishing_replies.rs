//! IT's answer to a phishing report reaches the reporter's headless agent (issues 6 and 7):
//! `tandem report-phishing` sends a link to a real `tandem-server`, IT triages it through the
//! admin API, and `tandem report-phishing --list` shows the verdict and the reply.

use serde_json::{json, Value};
use tandem_e2e::procs::{Server, Tandem};

#[test]
fn the_cli_lists_it_s_verdict_and_reply_on_a_sent_report() {
    let server = Server::start_sqlite().unwrap();
    let secret = server
        .admin_secret(&["enroll-secret", "create", "--group", "default"])
        .unwrap();
    let admin = server
        .admin_secret(&["token", "create", "--role", "admin"])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cli = Tandem::new(&dir.path().join("tandem")).env("TANDEM_CREDENTIAL_STORE", "file");
    cli.run_ok(&["enroll", "--server", &server.url, "--secret", &secret])
        .unwrap();
    let list = |plain: bool| {
        let args: &[&str] = if plain {
            &["report-phishing", "--list"]
        } else {
            &["report-phishing", "--list", "--json"]
        };
        cli.run_ok(args).unwrap()
    };

    let sent = cli
        .run_ok(&[
            "report-phishing",
            "--url",
            "https://login.acme-payroll.example/verify",
            "--json",
        ])
        .unwrap();
    let receipt: Value = serde_json::from_slice(&sent.stdout).unwrap();
    let tracking = receipt["tracking_id"].as_str().unwrap().to_owned();
    let listed: Value = serde_json::from_slice(&list(false).stdout).unwrap();
    assert_eq!(listed[0]["tracking_id"], tracking.as_str());
    assert_eq!(listed[0]["status"], "new");
    assert!(listed[0]["reply"].is_null());

    let http = reqwest::blocking::Client::new();
    let inbox: Value = http
        .get(format!("{}/api/v1/admin/phishing-reports", server.url))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tracking_id"] == tracking.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A reply with a terminal escape: printed escaped, it cannot rewrite the user's screen.
    let reply = "thanks — confirmed phishing\u{1b}[2J";
    let answer = http
        .put(format!(
            "{}/api/v1/admin/phishing-reports/{id}/triage",
            server.url
        ))
        .bearer_auth(&admin)
        .json(&json!({"status": "phishing", "reply": reply}))
        .send()
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::NO_CONTENT);

    let listed: Value = serde_json::from_slice(&list(false).stdout).unwrap();
    assert_eq!(listed[0]["status"], "phishing");
    assert_eq!(listed[0]["reply"], reply);
    assert!(listed[0]["updated_at"].is_string());
    let plain = String::from_utf8(list(true).stdout).unwrap();
    assert!(
        plain.contains(&format!("{tracking}  received"))
            && plain.contains("status phishing")
            && plain.contains("IT replied: thanks — confirmed phishing\\u{1b}[2J"),
        "{plain}"
    );
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
}
