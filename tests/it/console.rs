//! The IT console in a real browser: headless Chromium from Debian, driven over WebDriver by
//! chromedriver, against a real `tandem-server` and a real enrolled `tandem` agent.
//!
//! Screenshots of every page land in `test-output/console/` at the workspace root; the
//! README's are copied from there into `docs/screenshots/console/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use tandem_e2e::procs::{bin, last_line, run_ok, wait_for, Proc, Server, Tandem};
use tandem_e2e::webdriver::WebDriver;

const PASSWORD: &str = "a long console password";
const PAYLOAD: &str = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\"><svg onload=\"window.__pwned=3\">";

fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-output/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// RFC 6238 (SHA-1, 30 s, 6 digits), written here independently of the server's.
fn totp(secret: &str) -> String {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .unwrap();
    let step = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30;
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&step.to_be_bytes());
    let d = mac.finalize().into_bytes();
    let o = usize::from(d[19] & 0x0f);
    let n = u32::from_be_bytes([d[o] & 0x7f, d[o + 1], d[o + 2], d[o + 3]]) % 1_000_000;
    format!("{n:06}")
}

/// chromedriver on a free port, with headless Chromium behind it.
struct Browser {
    driver: WebDriver,
    _chromedriver: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        // chromedriver has, once in many runs, exited before it listened (CI, session 9);
        // a second start is what a person would do, and a third failure is a real one.
        let mut failures = Vec::new();
        let (proc, port) = loop {
            match Self::start_driver() {
                Ok(started) => break started,
                Err(e) if failures.len() < 2 => failures.push(e),
                Err(e) => {
                    failures.push(e);
                    panic!("chromedriver did not start: {failures:?}");
                }
            }
        };
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1440,1000", "--hide-scrollbars",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let driver = WebDriver::new_session(&format!("http://127.0.0.1:{port}"), capabilities)
            .expect("no WebDriver session");
        // A form's submit click can return before the answer page has replaced the old one;
        // finding waits up to this long for its element instead of failing on the old page.
        driver
            .call(
                reqwest::Method::POST,
                "/timeouts",
                Some(json!({"implicit": 5000})),
            )
            .expect("no implicit wait");
        Browser {
            driver,
            _chromedriver: proc,
            _profile: profile,
        }
    }

    /// chromedriver on a free port, and that port once it listens; why it did not, else.
    fn start_driver() -> Result<(Proc, String), String> {
        let mut child = Command::new("/usr/bin/chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromedriver is missing: install Debian's chromium and chromium-driver");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut proc = Proc {
            child,
            name: "chromedriver".into(),
        };
        // chromedriver says which port it took once it listens; no sleeping.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let _ = tx.send(port);
                }
            }
        });
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
            text
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => Ok((proc, port)),
            Err(e) => {
                let _ = proc.child.kill();
                let status = proc.child.wait().map(|s| s.to_string());
                let stderr = errors.join().unwrap_or_default();
                Err(format!("{e}; exit {status:?}; stderr: {}", stderr.trim()))
            }
        }
    }

    fn shot(&self, name: &str) {
        let png = self.driver.full_page_screenshot().unwrap();
        std::fs::write(output_dir().join(format!("{name}.png")), png).unwrap();
    }

    /// Signs in through the form, as a person would, and waits for the fleet overview the
    /// form lands on: a navigation started before the sign-in answer has set the session
    /// cookie would race it (the releases test once lost that race on a loaded machine).
    fn sign_in(&self, server: &Server, user: &str, secret: &str) {
        let d = &self.driver;
        d.navigate(&format!("{}/console/login", server.url))
            .unwrap();
        fill(d, "#username", user);
        fill(d, "#password", PASSWORD);
        fill(d, "#code", &totp(secret));
        d.click(&d.find("#sign-in").unwrap()).unwrap();
        self.expect_heading("Fleet overview");
    }

    /// The page's heading. A click that submits a form can return while the old page is
    /// still shown, and its heading can go stale while being read: read again until it
    /// reads.
    fn heading(&self) -> String {
        let d = &self.driver;
        wait_for(Duration::from_secs(10), "the page heading", || {
            d.find("h1").and_then(|h| d.text(&h)).ok()
        })
        .unwrap()
    }

    /// The text of the element `css` once it contains `needle`: what a submitted form's
    /// answer shows. A click that submits a form can return before the answer replaces the
    /// page, so reading straight after it would sometimes read the old page.
    fn text_containing(&self, css: &str, needle: &str) -> String {
        let d = &self.driver;
        let mut last = None;
        let seen = wait_for(
            Duration::from_secs(10),
            &format!("{needle:?} in {css}"),
            || {
                let text = d.find(css).and_then(|e| d.text(&e)).ok();
                last.clone_from(&text);
                text.filter(|t| t.contains(needle))
            },
        );
        seen.unwrap_or_else(|e| panic!("{e:#}; {css} reads {last:?}"))
    }

    /// Waits until the browser is at a URL ending with `path`.
    fn expect_path(&self, path: &str) {
        let d = &self.driver;
        wait_for(Duration::from_secs(10), path, || {
            d.current_url().ok().filter(|url| url.ends_with(path))
        })
        .unwrap();
    }

    /// Waits for the page whose heading is `expected` (the answer to a submitted form).
    fn expect_heading(&self, expected: &str) {
        let d = &self.driver;
        let seen = wait_for(Duration::from_secs(10), expected, || {
            d.find("h1")
                .and_then(|h| d.text(&h))
                .ok()
                .filter(|text| text == expected)
        });
        if let Err(e) = seen {
            panic!("{e:#}; the heading reads {:?}", self.heading());
        }
    }
}

/// Types `text` into the field `css` and checks that it arrived: on a loaded machine a
/// keystroke now and then goes missing, so typing is retried (twice at most).
fn fill(d: &WebDriver, css: &str, text: &str) {
    let field = d.find(css).unwrap();
    for _ in 0..3 {
        d.clear(&field).unwrap();
        d.send_keys(&field, text).unwrap();
        let value = d.call(
            reqwest::Method::GET,
            &format!("/element/{field}/property/value"),
            None,
        );
        if value.ok().as_ref().and_then(Value::as_str) == Some(text) {
            return;
        }
    }
    panic!("could not type into {css}");
}

/// Creates a console account with the CLI; returns its TOTP secret.
fn console_account(server: &Server, user: &str, role: &str) -> String {
    let out = run_ok(
        Command::new(bin("tandem-server").unwrap())
            .args(["admin", "create", "--username", user, "--role", role])
            .args(["--database", &server.database])
            .env("TANDEM_SERVER_ADMIN_PASSWORD", PASSWORD),
    )
    .unwrap();
    last_line(&out)
}

#[test]
fn sign_in_with_totp_then_a_policy_changed_in_the_form_reaches_the_agent_within_two_seconds() {
    let server = Server::start_sqlite().unwrap();
    let secret = console_account(&server, "ada", "admin");
    let enroll = server
        .admin_secret(&["enroll-secret", "create", "--group", "default"])
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let agent = Tandem::new(data.path()).env("TANDEM_CREDENTIAL_STORE", "file");
    agent
        .run_ok(&["enroll", "--server", &server.url, "--secret", &enroll])
        .unwrap();
    agent.run_ok(&["sync"]).unwrap();
    let run = agent.spawn_run().unwrap();
    wait_for(
        Duration::from_secs(20),
        "the agent to hold the server's policy",
        || {
            let s = agent.status_json().ok()?;
            (s["policy"]["source"] == "server").then_some(())
        },
    )
    .unwrap();

    let browser = Browser::start();
    let d = &browser.driver;
    d.navigate(&format!("{}/console/login", server.url))
        .unwrap();
    browser.shot("sign-in");
    // A wrong code is refused with a message and no session.
    fill(d, "#username", "ada");
    fill(d, "#password", PASSWORD);
    fill(d, "#code", "000000");
    d.click(&d.find("#sign-in").unwrap()).unwrap();
    let error = browser.text_containing("#login-error", "Wrong");
    assert!(
        error.contains("Wrong username, password or code"),
        "{error}"
    );

    browser.sign_in(&server, "ada", &secret);
    assert!(d.current_url().unwrap().ends_with("/console"));
    // The session cookie is invisible to script (HttpOnly).
    assert_eq!(d.execute("return document.cookie").unwrap(), "");
    browser.shot("fleet-overview");

    // Change the default group's policy through the form.
    d.navigate(&format!("{}/console/policies/default", server.url))
        .unwrap();
    browser.shot("policy-form");
    fill(d, "[name='/intervals/check_minutes']", "45");
    fill(d, "[name='/org/name']", "Browser Corp");
    d.click(&d.find("#preview-form").unwrap()).unwrap();
    assert!(
        browser
            .text_containing("h1", "Review")
            .starts_with("Review"),
        "{}",
        browser.heading()
    );
    let diff = d.text(&d.find("#diff").unwrap()).unwrap();
    assert!(
        diff.contains("/intervals/check_minutes") && diff.contains("45"),
        "{diff}"
    );
    let impact = d.text(&d.find("#impact").unwrap()).unwrap();
    assert!(impact.contains("of 1 devices"), "{impact}");
    browser.shot("policy-preview");

    let before = agent.status_json().unwrap()["policy"]["version"].as_i64();
    let pushed_at = Instant::now();
    d.click(&d.find("#push").unwrap()).unwrap();
    let version = wait_for(
        Duration::from_secs(5),
        "the agent to apply the pushed policy",
        || {
            let s = agent.status_json().ok()?;
            let v = s["policy"]["version"].as_i64();
            (v != before).then_some(v)
        },
    )
    .unwrap();
    let took = pushed_at.elapsed();
    eprintln!("the policy pushed from the console reached the agent in {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let notice = d.text(&d.find("#notice").unwrap()).unwrap();
    assert!(
        notice.contains(&format!("Version {} pushed", version.unwrap())),
        "{notice}"
    );
    let status = agent.status_json().unwrap();
    assert_eq!(
        status["policy"]["origins"]["/intervals/check_minutes"], "server",
        "{status}"
    );
    browser.shot("policy-pushed");

    // The device page shows the agent's report and the version in force.
    let device_id = status["enrollment"]["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    d.navigate(&format!("{}/console/devices/{device_id}", server.url))
        .unwrap();
    let raw = d.text(&d.find("#raw-report").unwrap()).unwrap();
    assert!(raw.contains("report_id"), "{raw}");
    browser.shot("device");
    run.terminate(Duration::from_secs(10)).unwrap();
}

fn post_json(url: &str, token: Option<&str>, body: &Value) -> Value {
    let mut req = reqwest::blocking::Client::new().post(url).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().unwrap();
    let status = resp.status();
    let answer: Value = resp.json().unwrap();
    assert!(status.is_success(), "POST {url}: {status} {answer}");
    answer
}

/// A device that enrols and reports with HTML and script in every string it controls.
fn hostile_device(server: &Server) -> String {
    let secret = server
        .admin_secret(&["enroll-secret", "create", "--group", "default"])
        .unwrap();
    let device = json!({"machine_id": "hostile-machine", "hostname": format!("pc{PAYLOAD}"),
        "os": format!("linux{PAYLOAD}"), "os_version": "12", "model": PAYLOAD, "serial": PAYLOAD});
    let user = json!({"login": format!("mallory{PAYLOAD}"), "email": "m@example.test"});
    let enrolled = post_json(
        &format!("{}/api/v1/enroll", server.url),
        None,
        &json!({"enroll_secret": secret, "device": device, "user": user}),
    );
    let token = enrolled["device_token"].as_str().unwrap().to_owned();
    // The inventory carries the device's fields at its top level.
    let mut inventory = device.clone();
    inventory["user"] = user.clone();
    let now = "2026-01-01T10:00:00Z";
    let result = |id: &str, status: &str| {
        json!({"id": id, "status": status, "summary": PAYLOAD, "reason": PAYLOAD,
            "details": {"html": PAYLOAD}, "evidence": [{"source": PAYLOAD, "excerpt": PAYLOAD}],
            "remediation": {"steps": [PAYLOAD]}, "owner": "user", "observed_at": now, "duration_ms": 3})
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    post_json(
        &format!("{}/api/v1/agent/reports", server.url),
        Some(&token),
        &json!({
            "report_id": format!("0190a000-0000-7000-8000-{:012x}", nanos % (1u128 << 48)),
            "agent_version": PAYLOAD, "sent_at": now,
            "inventory": inventory,
            "results": [result("os_updates", "fail"), result("firewall", "warn"), result("mfa", "pass")],
            "events": [{"kind": "nudge_shown", "at": now, "check_id": "os_updates", "detail": PAYLOAD}]
        }),
    );
    post_json(
        &format!("{}/api/v1/agent/phishing-reports", server.url),
        Some(&token),
        &json!({"url": "https://evil.example/x?<script>window.__pwned=5</script>", "note": PAYLOAD}),
    );
    enrolled["device_id"].as_str().unwrap().to_owned()
}

#[test]
fn hostile_device_data_runs_no_script_on_any_page_and_forms_need_their_csrf_token() {
    let server = Server::start_sqlite().unwrap();
    let secret = console_account(&server, "ada", "admin");
    let device_id = hostile_device(&server);
    let browser = Browser::start();
    let d = &browser.driver;
    browser.sign_in(&server, "ada", &secret);

    // Every page, including the ones that show the device's strings.
    let mut pages = vec![
        ("fleet-hostile", "/console".to_owned()),
        ("search", "/console?q=pc".to_owned()),
        ("device-hostile", format!("/console/devices/{device_id}")),
        ("policies", "/console/policies".to_owned()),
        ("enrollment", "/console/enrollment".to_owned()),
        ("identity", "/console/identity".to_owned()),
        ("phishing-inbox", "/console/phishing".to_owned()),
        ("webhooks", "/console/webhooks".to_owned()),
        ("api-tokens", "/console/tokens".to_owned()),
        ("admins", "/console/admins".to_owned()),
        ("audit-log", "/console/audit".to_owned()),
    ];
    d.navigate(&format!("{}/console/phishing", server.url))
        .unwrap();
    let report = d.find("table a[href^='/console/phishing/']").unwrap();
    let href = d.attribute(&report, "href").unwrap().unwrap();
    let report_path = href.trim_start_matches(server.url.as_str()).to_owned();
    pages.push(("phishing-report", report_path));
    for (name, path) in &pages {
        d.navigate(&format!("{}{path}", server.url)).unwrap();
        let pwned = d
            .execute("return window.__pwned === undefined ? null : window.__pwned")
            .unwrap();
        assert_eq!(pwned, Value::Null, "script ran on {path}");
        let title = d.execute("return document.title").unwrap();
        assert!(
            title.as_str().unwrap().ends_with("Tandem console"),
            "{path}: {title}"
        );
        // Expand every result so the screenshot shows the escaped evidence too.
        d.execute("document.querySelectorAll('details').forEach(e => e.open = true)")
            .unwrap();
        assert_eq!(
            d.execute("return document.querySelectorAll('img, iframe, object, embed').length")
                .unwrap(),
            0,
            "{path} grew elements from device data"
        );
        browser.shot(name);
    }
    // The payload is shown, as text.
    d.navigate(&format!("{}/console/devices/{device_id}", server.url))
        .unwrap();
    let hostname = d.text(&d.find("#device-hostname").unwrap()).unwrap();
    assert!(
        hostname.contains("<script>window.__pwned=1</script>"),
        "{hostname}"
    );

    // CSRF: the same signed-in browser posting without the form's token is refused, and
    // nothing changes.
    let status = d
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/console/policies/default/push', {method: 'POST', credentials: 'same-origin',
                 headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                 body: 'policy=' + encodeURIComponent('{\"org\":{\"name\":\"Forged\"}}')})
               .then(r => done(r.status), e => done(String(e)));",
        )
        .unwrap();
    assert_eq!(status, 403);
    d.navigate(&format!("{}/console/policies/default", server.url))
        .unwrap();
    assert_eq!(
        d.find_all("ol.versions li").unwrap().len(),
        0,
        "a forged push was stored"
    );
    browser.shot("policy-no-versions");
}

/// One device of the demo fleet: enrols, then reports `statuses` observed `days_ago`.
fn demo_device(
    server: &Server,
    secret: &str,
    host: &str,
    user: &str,
    os: (&str, &str),
    statuses: &[(&str, &str)],
    days_ago: i64,
) {
    let device = json!({"machine_id": format!("demo-{host}"), "hostname": host, "os": os.0,
        "os_version": os.1, "model": "ThinkPad X1", "serial": format!("SN-{host}")});
    let user = json!({"login": user, "email": format!("{user}@acme.example")});
    let enrolled = post_json(
        &format!("{}/api/v1/enroll", server.url),
        None,
        &json!({"enroll_secret": secret, "device": device, "user": user}),
    );
    let token = enrolled["device_token"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let observed = now.as_secs() as i64 - days_ago * 86_400;
    let at = |secs: i64| {
        let out = Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let results: Vec<Value> = statuses
        .iter()
        .map(|(id, status)| {
            json!({"id": id, "status": status,
                "summary": if *status == "pass" { "All good".to_owned() } else { format!("{id} needs attention") },
                "details": {}, "evidence": [{"source": "probe", "excerpt": "recorded output"}],
                "remediation": {"steps": []}, "owner": "user", "observed_at": at(observed), "duration_ms": 40})
        })
        .collect();
    let mut inventory = device.clone();
    inventory["user"] = user.clone();
    post_json(
        &format!("{}/api/v1/agent/reports", server.url),
        Some(token),
        &json!({"report_id": format!("0190a000-0000-7000-8000-{:012x}", now.as_nanos() % (1u128 << 48)),
            "agent_version": "0.1.0", "sent_at": at(now.as_secs() as i64), "inventory": inventory,
            "results": results, "events": [{"kind": "nudge_shown", "at": at(observed), "check_id": statuses[0].0, "detail": "reminder"}]}),
    );
    if host == "fin-lt-07" {
        let eml = "From: \"IT Service Desk\" <it-desk@acme-support.example>\r\nTo: carol@acme.example\r\nSubject: Action required: your mailbox is full\r\nDate: Mon, 23 Nov 2026 08:12:00 +0000\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Click <a href=\"https://acme-support.example/reset?u=carol\">here</a> to keep your mailbox.</p>\r\n--b\r\nContent-Type: application/octet-stream; name=invoice.pdf.exe\r\nContent-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n";
        let form = reqwest::blocking::multipart::Form::new()
            .text("note", "Looks like a fake IT message")
            .part(
                "message",
                reqwest::blocking::multipart::Part::bytes(eml.as_bytes().to_vec())
                    .file_name("message.eml"),
            );
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/agent/phishing-reports", server.url))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }
}

/// Hostname, user, (OS, version), failing checks, days since the results were observed.
type DemoDevice = (
    &'static str,
    &'static str,
    (&'static str, &'static str),
    &'static [&'static str],
    i64,
);

/// What the README shows: a small fleet with history, and every page used through its forms.
#[test]
fn every_console_page_works_in_the_browser_with_a_demo_fleet() {
    let server = Server::start_sqlite().unwrap();
    let secret = console_account(&server, "ada", "admin");
    let enroll = server
        .admin_secret(&["enroll-secret", "create", "--group", "default"])
        .unwrap();
    let all = [
        "os_updates",
        "mfa",
        "password_age",
        "password_manager",
        "firewall",
        "disk_encryption",
        "screen_lock",
        "antivirus",
        "auto_updates",
        "os_supported",
        "software_sources",
    ];
    let fleet: [DemoDevice; 8] = [
        ("eng-mbp-01", "ada", ("macos", "15.1"), &[], 1),
        ("eng-mbp-02", "grace", ("macos", "14.7"), &["os_updates"], 3),
        (
            "eng-lt-03",
            "linus",
            ("ubuntu", "24.04"),
            &["screen_lock", "password_manager"],
            20,
        ),
        (
            "fin-lt-07",
            "carol",
            ("windows", "10.0.22631"),
            &["disk_encryption"],
            30,
        ),
        ("ops-lt-11", "dan", ("debian", "12"), &[], 1),
        (
            "sales-lt-12",
            "erin",
            ("windows", "10.0.19045"),
            &["mfa", "antivirus"],
            2,
        ),
        ("sales-lt-14", "frank", ("macos", "15.1"), &[], 1),
        (
            "hr-lt-02",
            "heidi",
            ("windows", "10.0.22631"),
            &["firewall"],
            16,
        ),
    ];
    for (host, user, os, failing, days) in fleet {
        let statuses: Vec<(&str, &str)> = all
            .iter()
            .map(|c| {
                (
                    *c,
                    if failing.contains(c) {
                        "fail"
                    } else if *c == "antivirus" && os.0 != "windows" {
                        "not_applicable"
                    } else {
                        "pass"
                    },
                )
            })
            .collect();
        demo_device(&server, &enroll, host, user, os, &statuses, days);
    }
    // Thirty days of history for the trend chart, as the server's daily refresh records it
    // (written straight into the database: the test cannot wait a month).
    let path = server.database.trim_start_matches("sqlite://");
    let mut sql = String::from("BEGIN;");
    for day in 1..30i64 {
        for (i, check) in all.iter().enumerate() {
            // Worse a month ago, better since: the programme working.
            let late = day / 8 + (i as i64 % 3) * i64::from(day > 10);
            let due = (day / 6).min(3) + i64::from(i % 4 == 0);
            let pass = (8 - late.min(3) - due.min(3)).max(2);
            let unknown = 8 - pass - late.min(3) - due.min(3);
            sql.push_str(&format!(
                "INSERT OR REPLACE INTO console_compliance_daily VALUES (date('now', '-{day} days'), '{check}', {pass}, {}, {}, {});",
                due.min(3), late.min(3), unknown.max(0)
            ));
        }
    }
    sql.push_str("COMMIT;");
    run_ok(Command::new("sqlite3").arg(path).arg(&sql)).unwrap();

    let browser = Browser::start();
    let d = &browser.driver;
    browser.sign_in(&server, "ada", &secret);
    browser.shot("readme-fleet");
    // Filters: only the Windows machines, then a search.
    d.navigate(&format!("{}/console?os=windows", server.url))
        .unwrap();
    assert_eq!(d.find_all("#devices tbody tr").unwrap().len(), 3);
    d.navigate(&format!("{}/console?q=carol", server.url))
        .unwrap();
    let rows = d.find_all("#devices tbody tr a").unwrap();
    assert_eq!(rows.len(), 1);
    d.click(&rows[0]).unwrap();
    assert_eq!(
        browser.text_containing("#device-hostname", "fin-lt-07"),
        "fin-lt-07"
    );
    browser.shot("readme-device");

    // Enrolment: a secret with copy-ready commands.
    d.navigate(&format!("{}/console/enrollment", server.url))
        .unwrap();
    fill(d, "[name=expires_in_days]", "7");
    d.click(&d.find("form.row button[type=submit]").unwrap())
        .unwrap();
    browser.text_containing("#created-secret", "tandem enroll --server");
    browser.shot("readme-enrollment");

    // Phishing: the reported message is listed, its link and attachment shown as text.
    d.navigate(&format!("{}/console/phishing", server.url))
        .unwrap();
    browser.shot("readme-phishing-inbox");
    d.click(&d.find("table a[href^='/console/phishing/']").unwrap())
        .unwrap();
    let body = browser.text_containing(".content", "https://acme-support.example/reset?u=carol");
    assert!(body.contains("invoice.pdf.exe"), "{body}");
    assert_eq!(
        d.find_all(".content a[href^='https://acme']")
            .unwrap()
            .len(),
        0,
        "a live link"
    );
    let reply = d.find("[name=reply]").unwrap();
    d.send_keys(
        &reply,
        "Thanks — confirmed phishing. We blocked the sender.",
    )
    .unwrap();
    d.execute("document.querySelector('[name=status]').value = 'phishing'")
        .unwrap();
    d.click(&d.find("aside button[type=submit]").unwrap())
        .unwrap();
    browser.text_containing("aside", "Last triaged by admin:ada");
    browser.shot("readme-phishing-report");

    // Identity: a bulk import through the form.
    d.navigate(&format!("{}/console/identity", server.url))
        .unwrap();
    let csv = d.find("[name=csv]").unwrap();
    d.send_keys(&csv, "email,mfa_enrolled,password_changed_at\nada@acme.example,true,2026-09-01T00:00:00Z\nerin@acme.example,false,2025-10-01T00:00:00Z\n").unwrap();
    d.click(
        &d.find("form[action='/console/identity/import'] button")
            .unwrap(),
    )
    .unwrap();
    browser.text_containing(".alert.ok", "Imported 2 users");
    browser.shot("readme-identity");

    // API tokens and accounts.
    d.navigate(&format!("{}/console/tokens", server.url))
        .unwrap();
    fill(d, "[name=name]", "SIEM export");
    d.click(&d.find("form.row button[type=submit]").unwrap())
        .unwrap();
    // The answer page is the only one with the token on it.
    assert!(!browser.text_containing("#token-value", "").is_empty());
    browser.shot("readme-tokens");
    d.navigate(&format!("{}/console/admins", server.url))
        .unwrap();
    fill(d, "[name=username]", "val");
    fill(d, "[name=password]", PASSWORD);
    d.click(&d.find("form.row button[type=submit]").unwrap())
        .unwrap();
    let uri = d
        .text(
            &d.find("#totp-uri").unwrap_or_else(|e| {
                panic!("{e}: {}", d.text(&d.find(".content").unwrap()).unwrap())
            }),
        )
        .unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Tandem%3Aval?secret="),
        "{uri}"
    );
    let val_secret = d.text(&d.find("#totp-secret").unwrap()).unwrap();
    browser.shot("readme-admins");

    // A new group's policy, the audit log with everything above, and the policy pages.
    d.navigate(&format!("{}/console/policies", server.url))
        .unwrap();
    fill(d, "form.row [name=name]", "engineering");
    d.click(&d.find("form.row button").unwrap()).unwrap();
    browser.expect_heading("Policy: engineering");
    browser.shot("readme-policy-form");
    d.navigate(&format!("{}/console/policies", server.url))
        .unwrap();
    browser.shot("readme-policies");
    d.navigate(&format!("{}/console/audit", server.url))
        .unwrap();
    let audit = d.text(&d.find("table.audit").unwrap()).unwrap();
    for action in [
        "enroll_secret.create",
        "phishing_report.triage",
        "identity.import",
        "api_token.create",
        "console_admin.create",
        "group.create",
    ] {
        assert!(
            audit.contains(action),
            "{action} missing from the audit log"
        );
    }
    browser.shot("readme-audit");

    // The viewer sees the pages without any form that changes something.
    d.click(&d.find("button.link").unwrap()).unwrap();
    browser.expect_path("/console/login");
    browser.sign_in(&server, "val", &val_secret);
    d.navigate(&format!("{}/console/policies/default", server.url))
        .unwrap();
    assert_eq!(d.find_all("#preview-form").unwrap().len(), 0);
    browser.shot("readme-viewer-policy");
}

// --- Identity sources and webhooks configured in the browser (issue 7) ----------------------

/// One request a [`LocalHttp`] server received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Answer = (u16, Vec<(String, String)>, String);

/// A small HTTP/1.1 server on `127.0.0.1:0` that answers each request with `respond` and
/// records it: the vendor or receiver the console talks to in these tests.
struct LocalHttp {
    url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl LocalHttp {
    fn start(respond: fn(&Received, &str) -> Answer) -> LocalHttp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received: std::sync::Arc<std::sync::Mutex<Vec<Received>>> = Default::default();
        let (log, base) = (std::sync::Arc::clone(&received), url.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (log, base) = (std::sync::Arc::clone(&log), base.clone());
                std::thread::spawn(move || {
                    use std::io::{Read as _, Write as _};
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_owned();
                    let target = parts.next().unwrap_or_default().to_owned();
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.trim_end().split_once(':') {
                            headers.push((k.trim().to_owned(), v.trim().to_owned()));
                        }
                    }
                    let length = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let request = Received {
                        method,
                        target,
                        headers,
                        body,
                    };
                    let (status, extra, text) = respond(&request, &base);
                    log.lock().unwrap().push(request);
                    let mut answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        text.len()
                    );
                    // JSON unless the answer says otherwise (the fake provider's HTML page).
                    if !extra
                        .iter()
                        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    {
                        answer.push_str("Content-Type: application/json\r\n");
                    }
                    for (k, v) in extra {
                        answer.push_str(&format!("{k}: {v}\r\n"));
                    }
                    answer.push_str("\r\n");
                    answer.push_str(&text);
                    let mut stream = reader.into_inner();
                    let _ = stream.write_all(answer.as_bytes());
                });
            }
        });
        LocalHttp { url, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Okta's documented shapes: `GET /api/v1/users` (paged by `Link: rel="next"`) with
/// `passwordChanged`, and `GET /api/v1/users/{id}/factors` where `ACTIVE` counts.
fn okta_answer(r: &Received, base: &str) -> Answer {
    if r.header("authorization") != Some("SSWS e2e-okta-token") {
        return (401, vec![], json!({"errorCode": "E0000011"}).to_string());
    }
    let path = r.target.split('?').next().unwrap_or_default();
    if path == "/api/v1/users" && !r.target.contains("after=") {
        let link = format!("<{base}/api/v1/users?after=00u2&limit=200>; rel=\"next\"");
        let users = json!([
            {"id": "00u1", "status": "ACTIVE", "passwordChanged": "2026-03-01T10:00:00.000Z",
             "profile": {"login": "ada@acme.example", "email": "ada@acme.example"}},
            {"id": "00u2", "status": "ACTIVE", "passwordChanged": null,
             "profile": {"login": "grace@acme.example", "email": "grace@acme.example"}}
        ]);
        return (200, vec![("Link".into(), link)], users.to_string());
    }
    if path == "/api/v1/users" {
        let users = json!([
            {"id": "00u3", "status": "ACTIVE", "passwordChanged": "2025-11-20T08:00:00.000Z",
             "profile": {"login": "linus@acme.example", "email": "linus@acme.example"}}
        ]);
        return (200, vec![], users.to_string());
    }
    if let Some(id) = path
        .strip_prefix("/api/v1/users/")
        .and_then(|p| p.strip_suffix("/factors"))
    {
        let status = if id == "00u2" {
            "PENDING_ACTIVATION"
        } else {
            "ACTIVE"
        };
        let factors = json!([{"id": "f1", "factorType": "token:software:totp", "status": status}]);
        return (200, vec![], factors.to_string());
    }
    (404, vec![], "{}".into())
}

fn receiver_answer(_: &Received, _: &str) -> Answer {
    (200, vec![], "{\"ok\":true}".into())
}

/// HMAC-SHA256 over `timestamp.body`, as a receiver checks `X-Tandem-Signature`.
fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn copy_to_docs(name: &str, as_name: &str) {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots/console");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::copy(
        output_dir().join(format!("{name}.png")),
        docs.join(format!("{as_name}.png")),
    )
    .unwrap();
}

#[test]
fn identity_sources_and_webhooks_are_configured_and_tested_in_the_browser() {
    let okta = LocalHttp::start(okta_answer);
    let receiver = LocalHttp::start(receiver_answer);
    let server = Server::start_sqlite().unwrap();
    let secret = console_account(&server, "ada", "admin");
    let browser = Browser::start();
    let d = &browser.driver;
    browser.sign_in(&server, "ada", &secret);

    // An Okta source, created through its form and tested.
    d.navigate(&format!("{}/console/identity", server.url))
        .unwrap();
    d.click(&d.find("#add-okta").unwrap()).unwrap();
    browser.expect_heading("New Okta source");
    fill(d, "#f-name", "okta-acme");
    fill(d, "#f-interval_minutes", "30");
    fill(d, "#f-base_url", &okta.url);
    fill(d, "#f-api_token", "e2e-okta-token");
    d.click(&d.find("#save-source").unwrap()).unwrap();
    browser.expect_heading("Identity sources");
    d.click(
        &d.find("tr[data-source='okta-acme'] button.test-connection")
            .unwrap(),
    )
    .unwrap();
    let notice = d.text(&d.find("#notice").unwrap()).unwrap();
    assert_eq!(notice, "okta-acme answered: 3 users synced.");
    let users = d
        .text(&d.find("tr[data-source='okta-acme'] td.users").unwrap())
        .unwrap();
    assert_eq!(users, "3");
    browser.shot("identity");
    copy_to_docs("identity", "identity");
    let requests = okta.received();
    assert!(
        requests.iter().any(|r| r.target.contains("after=00u2")),
        "the second page was followed: {requests:?}"
    );
    // The token is never shown again, not even in the edit form's HTML.
    d.navigate(&format!(
        "{}/console/identity/sources/okta-acme",
        server.url
    ))
    .unwrap();
    let html = d
        .execute("return document.documentElement.outerHTML")
        .unwrap();
    let html = html.as_str().unwrap();
    assert!(!html.contains("e2e-okta-token"));
    assert!(html.contains("set — leave blank to keep"));
    browser.shot("identity-source");
    copy_to_docs("identity-source", "identity-source");

    // A webhook, added through the form, then "Send test".
    d.navigate(&format!("{}/console/webhooks", server.url))
        .unwrap();
    fill(d, "#h-name", "SIEM");
    fill(d, "#h-url", &format!("{}/tandem-hook", receiver.url));
    fill(d, "#h-secret", "e2e-hook-secret");
    d.click(
        &d.find("input[name=events][value=phishing_reported]")
            .unwrap(),
    )
    .unwrap();
    d.click(&d.find("#save-hook").unwrap()).unwrap();
    browser.expect_heading("Webhooks");
    d.click(&d.find("button.send-test").unwrap()).unwrap();
    let notice = wait_for(
        Duration::from_secs(10),
        "the test delivery's answer",
        || {
            d.find("#notice")
                .and_then(|n| d.text(&n))
                .ok()
                .filter(|text| text.contains("answered HTTP"))
        },
    )
    .unwrap();
    assert!(notice.contains("answered HTTP 200"), "{notice}");
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let delivery = &got[0];
    assert_eq!(delivery.method, "POST");
    assert_eq!(delivery.target, "/tandem-hook");
    let timestamp = delivery.header("x-tandem-timestamp").unwrap();
    assert_eq!(
        delivery.header("x-tandem-signature").unwrap(),
        expected_signature("e2e-hook-secret", timestamp, &delivery.body)
    );
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body["event"], "test");
    let page = d.text(&d.find(".content").unwrap()).unwrap();
    assert!(!page.contains("e2e-hook-secret") && !page.contains("tandem-hook"));
    browser.shot("webhooks");
    copy_to_docs("webhooks", "webhooks");

    // Both changes are in the audit log, without their secrets.
    d.navigate(&format!("{}/console/audit", server.url))
        .unwrap();
    let audit = d.text(&d.find("table.audit").unwrap()).unwrap();
    assert!(audit.contains("identity_source.create"), "{audit}");
    assert!(audit.contains("webhook.create"), "{audit}");
    assert!(!audit.contains("e2e-okta-token") && !audit.contains("e2e-hook-secret"));
}

#[test]
fn releases_are_uploaded_verified_and_assigned_a_channel_in_the_browser() {
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = crate::update::keypair(keys.path());
    let artifact = keys.path().join("tandem-0.3.0");
    std::fs::write(&artifact, b"tandem 0.3.0 build".repeat(20_000)).unwrap();
    let signature = crate::update::sign(&key, &artifact);
    let other_keys = tempfile::tempdir().unwrap();
    let (other_key, _) = crate::update::keypair(other_keys.path());
    let forged = crate::update::sign(&other_key, &artifact);

    let server = Server::start_sqlite_with_args(&["--updater-pubkey", &public]).unwrap();
    // A group to give its own channel.
    server
        .admin_secret(&["enroll-secret", "create", "--group", "pilot"])
        .unwrap();
    let secret = console_account(&server, "ada", "admin");
    let browser = Browser::start();
    browser.sign_in(&server, "ada", &secret);
    let d = &browser.driver;
    d.navigate(&format!("{}/console/releases", server.url))
        .unwrap();
    browser.expect_heading("Releases");

    let upload = |version: &str, signature: &str| {
        fill(d, "input[name=version]", version);
        let file = d.find("input[name=artifact]").unwrap();
        d.send_keys(&file, artifact.to_str().unwrap()).unwrap();
        fill(d, "textarea[name=signature]", signature);
        fill(
            d,
            "textarea[name=notes]",
            "Fixes the firewall check on Fedora",
        );
        d.click(&d.find("#upload-form button[type=submit]").unwrap())
            .unwrap();
    };
    // Another key's signature is refused with a clear message, and nothing is listed.
    upload("0.3.0", &forged);
    let error = d.text(&d.find("#error").unwrap()).unwrap();
    assert!(
        error.contains("signature does not match this artifact and key"),
        "{error}"
    );
    assert!(d
        .text(&d.find("#releases").unwrap())
        .unwrap()
        .contains("No release uploaded yet"));
    browser.shot("releases-refused");

    upload("0.3.0", &signature);
    let notice = d.text(&d.find("#notice").unwrap()).unwrap();
    assert!(
        notice.contains("Release 0.3.0 for cli-linux-x86_64"),
        "{notice}"
    );
    let table = d.text(&d.find("#releases").unwrap()).unwrap();
    assert!(table.contains("0.3.0") && table.contains("ok ·"), "{table}");

    // The pilot group moves to the beta channel.
    assert_eq!(d.find_all("#channels-table tbody tr").unwrap().len(), 2);
    fill(d, "#channel-pilot", "beta");
    d.click(&d.find("#set-channel-pilot").unwrap()).unwrap();
    wait_for(Duration::from_secs(10), "the channel change", || {
        let field = d.find("#channel-pilot").ok()?;
        let value = d
            .call(
                reqwest::Method::GET,
                &format!("/element/{field}/property/value"),
                None,
            )
            .ok()?;
        (value.as_str() == Some("beta") && d.find("#notice").is_err()).then_some(())
    })
    .unwrap();
    let audit = {
        d.navigate(&format!("{}/console/audit", server.url))
            .unwrap();
        d.text(&d.find("main").unwrap()).unwrap()
    };
    assert!(
        audit.contains("release.create") && audit.contains("group.channel"),
        "{audit}"
    );
    d.navigate(&format!("{}/console/releases", server.url))
        .unwrap();
    browser.shot("releases");
    copy_to_docs("releases", "releases");
}

// --- OpenID Connect sign-in through a fake identity provider (issue 7) ----------------------

const OIDC_CLIENT_ID: &str = "tandem-console";
const OIDC_CLIENT_SECRET: &str = "e2e-oidc-client-secret";
/// Bob's object id in the fake "Entra" tenant.
const ENTRA_OBJECT_ID: &str = "7d3c0a3e-5b1f-4d6e-9a51-0f4e2b9c8d71";

/// The provider's issuer: `localhost`, while the console is reached at `127.0.0.1`, so that
/// the provider is another site and the browser applies its cross-site cookie rules.
fn oidc_issuer(base: &str) -> String {
    base.replace("127.0.0.1", "localhost")
}

/// Form or query fields, decoded.
fn form_fields(encoded: &str) -> std::collections::HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{encoded}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn oidc_key() -> ring::signature::RsaKeyPair {
    use base64::Engine as _;
    let pem = include_str!("../../crates/server/test-data/oidc/rsa-a.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap()
}

/// A fake identity provider. It keeps no state: the code it hands out carries the nonce,
/// the PKCE challenge and the redirect URI of its authorization request, which the token
/// endpoint checks the verifier and the client's secret against before it signs an RS256
/// ID token for alice@example.com.
fn oidc_provider_answer(r: &Received, base: &str) -> Answer {
    let issuer = oidc_issuer(base);
    let (path, query) = r.target.split_once('?').unwrap_or((&r.target, ""));
    match path {
        "/.well-known/openid-configuration" => {
            let doc = json!({"issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "token_endpoint_auth_methods_supported": ["client_secret_basic"]});
            (200, vec![], doc.to_string())
        }
        "/jwks" => {
            let key = oidc_key();
            let c = ring::signature::RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
            let jwks = json!({"keys": [{"kty": "RSA", "kid": "e2e", "use": "sig", "alg": "RS256",
                "n": b64url(&c.n), "e": b64url(&c.e)}]});
            (200, vec![], jwks.to_string())
        }
        "/authorize" => {
            let q = form_fields(query);
            if q.get("code_challenge_method").map(String::as_str) != Some("S256")
                || q.get("client_id").map(String::as_str) != Some(OIDC_CLIENT_ID)
            {
                return (400, vec![], "{}".into());
            }
            let code = |who: &str| {
                b64url(
                    json!({"nonce": q["nonce"], "challenge": q["code_challenge"],
                           "redirect_uri": q["redirect_uri"], "who": who})
                    .to_string()
                    .as_bytes(),
                )
            };
            // The provider's own page: a person approves, and the form takes the browser
            // back. Bob's answer is Microsoft Entra's: no email_verified, an object id.
            let form = |who: &str, id: &str, label: &str| {
                format!(
                    "<form method=\"get\" action=\"{}\">\
                     <input type=\"hidden\" name=\"code\" value=\"{}\">\
                     <input type=\"hidden\" name=\"state\" value=\"{}\">\
                     <button id=\"{id}\">{label}</button></form>",
                    q["redirect_uri"],
                    code(who),
                    q["state"]
                )
            };
            let page = format!(
                "<!doctype html><title>Fake IdP</title><h1>Fake IdP</h1>{}{}",
                form("alice", "approve", "Continue as alice@example.com"),
                form(
                    "bob",
                    "approve-entra",
                    "Continue as bob@example.com (Entra)"
                )
            );
            (
                200,
                vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
                page,
            )
        }
        "/token" => {
            use base64::Engine as _;
            use sha2::Digest as _;
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{OIDC_CLIENT_ID}:{OIDC_CLIENT_SECRET}"))
            );
            if r.header("authorization") != Some(basic.as_str()) {
                return (401, vec![], json!({"error": "invalid_client"}).to_string());
            }
            let form = form_fields(&String::from_utf8_lossy(&r.body));
            let Some(grant) = form
                .get("code")
                .and_then(|c| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(c)
                        .ok()
                })
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            else {
                return (400, vec![], json!({"error": "invalid_grant"}).to_string());
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let challenge = b64url(&sha2::Sha256::digest(verifier.as_bytes()));
            if grant["challenge"] != challenge.as_str()
                || grant["redirect_uri"]
                    != form
                        .get("redirect_uri")
                        .map(String::as_str)
                        .unwrap_or_default()
            {
                return (400, vec![], json!({"error": "invalid_grant"}).to_string());
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let claims = if grant["who"] == "bob" {
                json!({"iss": issuer, "aud": OIDC_CLIENT_ID, "sub": "pairwise-e2e-bob",
                    "oid": ENTRA_OBJECT_ID, "email": "bob@example.com", "nonce": grant["nonce"],
                    "iat": now, "exp": now + 300, "amr": ["pwd", "mfa"]})
            } else {
                json!({"iss": issuer, "aud": OIDC_CLIENT_ID, "sub": "00u-e2e-alice",
                    "email": "alice@example.com", "email_verified": true, "nonce": grant["nonce"],
                    "iat": now, "exp": now + 300, "amr": ["pwd", "otp"]})
            };
            let input = format!(
                "{}.{}",
                b64url(json!({"alg": "RS256", "kid": "e2e"}).to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let key = oidc_key();
            let mut signature = vec![0; key.public().modulus_len()];
            key.sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .unwrap();
            let token = json!({"access_token": "at", "token_type": "Bearer",
                "id_token": format!("{input}.{}", b64url(&signature))});
            (200, vec![], token.to_string())
        }
        _ => (404, vec![], "{}".into()),
    }
}

#[test]
fn sign_in_with_the_identity_provider_lands_on_the_fleet_and_a_forged_state_is_refused() {
    let idp = LocalHttp::start(oidc_provider_answer);
    let issuer = oidc_issuer(&idp.url);
    // The public URL must be known before the server picks its port: a proxy in front of
    // it, as in a real deployment, holds the address.
    let proxy = tandem_e2e::proxy::Proxy::start("http://127.0.0.1:9").unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("oidc-client-secret");
    std::fs::write(&secret_file, format!("{OIDC_CLIENT_SECRET}\n")).unwrap();
    let server = Server::start_sqlite_with_args(&[
        "--public-url",
        &proxy.url,
        "--oidc-issuer",
        &issuer,
        "--oidc-client-id",
        OIDC_CLIENT_ID,
        "--oidc-client-secret-file",
        secret_file.to_str().unwrap(),
        "--oidc-name",
        "Okta",
    ])
    .unwrap();
    proxy.set_upstream(&server.url).unwrap();
    console_account(&server, "alice@example.com", "admin");

    let browser = Browser::start();
    let d = &browser.driver;
    d.navigate(&format!("{}/console/login", proxy.url)).unwrap();
    let button = d.find("#sign-in-oidc").unwrap();
    assert_eq!(d.text(&button).unwrap(), "Sign in with Okta");
    browser.shot("login-oidc");
    copy_to_docs("login-oidc", "login-oidc");
    d.click(&button).unwrap();
    // At the provider (another site), then back through the callback to the overview,
    // without any TOTP prompt.
    browser.expect_heading("Fake IdP");
    assert!(d.current_url().unwrap().starts_with(&issuer));
    d.click(&d.find("#approve").unwrap()).unwrap();
    browser.expect_heading("Fleet overview");
    assert_eq!(
        d.text(&d.find(".user").unwrap()).unwrap(),
        "alice@example.com"
    );
    assert!(d.current_url().unwrap().starts_with(&proxy.url));
    assert!(idp
        .received()
        .iter()
        .any(|r| r.method == "POST" && r.target == "/token"));

    // Bob's provider vouches for no email (Entra): refused until alice links his object id
    // on the Admins page.
    console_account(&server, "bob@example.com", "viewer");
    let bob_row = "tr[data-username=\"bob@example.com\"]";
    d.navigate(&format!("{}/console/admins", proxy.url))
        .unwrap();
    browser.expect_heading("Admins & roles");
    d.click(
        &d.find(&format!("{bob_row} select[name=claim] option[value=oid]"))
            .unwrap(),
    )
    .unwrap();
    fill(
        d,
        &format!("{bob_row} input[name=subject]"),
        ENTRA_OBJECT_ID,
    );
    d.click(
        &d.find(&format!("{bob_row} form.oidc-link-form button"))
            .unwrap(),
    )
    .unwrap();
    let linked = wait_for(Duration::from_secs(10), "bob's link", || {
        d.find(&format!("{bob_row} .oidc-link code"))
            .and_then(|c| d.text(&c))
            .ok()
    })
    .unwrap();
    assert_eq!(linked, format!("oid:{ENTRA_OBJECT_ID}"));
    browser.shot("admins-oidc-link");
    d.click(&d.find(".who button").unwrap()).unwrap();
    // Signed out: the sign-in page (found by its button; the implicit wait covers the load).
    d.click(&d.find("#sign-in-oidc").unwrap()).unwrap();
    browser.expect_heading("Fake IdP");
    d.click(&d.find("#approve-entra").unwrap()).unwrap();
    browser.expect_heading("Fleet overview");
    assert_eq!(
        d.text(&d.find(".user").unwrap()).unwrap(),
        "bob@example.com"
    );

    // A callback whose state is not this browser's sign-in is refused, whatever its code.
    d.navigate(&format!("{}/console/oidc/start", proxy.url))
        .unwrap();
    browser.expect_heading("Fake IdP");
    let tokens_before = idp
        .received()
        .iter()
        .filter(|r| r.target == "/token")
        .count();
    d.navigate(&format!(
        "{}/console/oidc/callback?code=stolen&state=forged",
        proxy.url
    ))
    .unwrap();
    browser.expect_heading("Sign-in refused");
    let error = d.text(&d.find("#oidc-error").unwrap()).unwrap();
    assert!(error.contains("state mismatch"), "{error}");
    browser.shot("login-oidc-state-mismatch");
    assert_eq!(
        idp.received()
            .iter()
            .filter(|r| r.target == "/token")
            .count(),
        tokens_before,
        "a forged state never reaches the token endpoint"
    );
}
