//! The window's pages, driven through WebDriver (tauri-driver + WebKitWebDriver) against a
//! real `tandem-server`: the home view lists the agent's items in the right halves with the
//! right score, an item page's "Check again" re-runs the checks, the phishing form reaches
//! the server and shows its tracking id, "What IT can see" is the report the server stored,
//! and a language switch changes the words. Screenshots of each page in light and dark land
//! in `test-output/desktop/`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tandem_e2e::desktop_session::{DesktopSession, SessionOptions};
use tandem_e2e::procs::{wait_for, Server, Tandem};
use tandem_e2e::webdriver::WebDriver;

use crate::desktop::{app_env, output_dir, screenshot_settled, webdriver, APP_READY};

/// A managed policy that gives IT's half something to show besides IT-owned checks.
const MANAGED_POLICY: &str = r#"{
  "org": {"name": "Acme", "helpdesk_url": "https://help.acme.example", "phishing_contact": "security@acme.example"},
  "it_commitments": [
    {"title": "Email filtering", "by": "our mail provider", "detail": "Spam and known phishing are blocked before they reach you"},
    {"title": "Backups", "by": "IT", "detail": "Your work folders are backed up every night"}
  ]
}"#;

fn one(wd: &WebDriver, css: &str) -> Option<String> {
    wd.find_all(css).ok()?.into_iter().next()
}

fn text_of(wd: &WebDriver, css: &str) -> Option<String> {
    wd.text(&one(wd, css)?).ok()
}

/// Types into an input through WebDriver, so the page sees real key events.
fn type_into(wd: &WebDriver, element: &str, text: &str) {
    wd.call(
        reqwest::Method::POST,
        &format!("/element/{element}/value"),
        Some(json!({ "text": text })),
    )
    .unwrap();
}

/// Chooses an option of a `<select>` as a user would: sets it and fires `change`.
fn choose(wd: &WebDriver, select: &str, value: &str) {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         const s = document.querySelector({select:?});
         s.value = {value:?};
         s.dispatchEvent(new Event('change', {{ bubbles: true }}));
         done(s.value);"
    );
    let chosen = wd.execute_async(&script).unwrap();
    assert_eq!(chosen.as_str(), Some(value));
}

/// Calls one of the window's own commands and returns its answer.
fn invoke(wd: &WebDriver, command: &str) -> Value {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         window.__TAURI_INTERNALS__.invoke({command:?}).then(done, (e) => done({{ error: String(e) }}));"
    );
    let answer = wd.execute_async(&script).unwrap();
    assert!(answer.get("error").is_none(), "{command}: {answer}");
    answer
}

fn go(wd: &WebDriver, nav: &str) {
    let link = one(wd, &format!("#nav-{nav}")).unwrap();
    wd.click(&link).unwrap();
}

fn window_shot(session: &DesktopSession, name: &str) {
    let out = output_dir().unwrap();
    let window = session
        .windows_named("Tandem")
        .unwrap()
        .into_iter()
        .next()
        .expect("the Tandem window on screen");
    screenshot_settled(session, window.rect(), &out.join(format!("{name}.png"))).unwrap();
}

fn admin_get(server: &Server, token: &str, path: &str) -> Value {
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().unwrap()
}

#[test]
fn the_window_pages_show_the_agent_and_reach_the_server() {
    let server = Server::start_sqlite().unwrap();
    let secret = server
        .admin_secret(&["enroll-secret", "create", "--group", "default"])
        .unwrap();
    let admin = server
        .admin_secret(&["token", "create", "--role", "admin"])
        .unwrap();
    let mut session = DesktopSession::with(SessionOptions {
        keyring: false,
        ..SessionOptions::default()
    })
    .unwrap();
    let managed = session.dir().join("managed-policy.json");
    std::fs::write(&managed, MANAGED_POLICY).unwrap();
    let mut env = app_env(&session);
    env.push(("TANDEM_MANAGED_POLICY", managed.display().to_string()));
    // A closed window is kept hidden this long before it is destroyed (45 s by default).
    env.push(("TANDEM_WINDOW_GRACE_SECS", "3".to_owned()));

    // Enrolled with the CLI into the data dir the app then opens; enrolment sends the first
    // report, so "What IT can see" has something from the start.
    let data = session.dir().join("tandem");
    let cli = Tandem::new(&data)
        .env("TANDEM_CREDENTIAL_STORE", "file")
        .env("TANDEM_MANAGED_POLICY", &managed.display().to_string());
    cli.run_ok(&["enroll", "--server", &server.url, "--secret", &secret])
        .unwrap();

    let wd = webdriver(&mut session, &env);

    // Home: each of the agent's results in its half, and the score that follows from them.
    let state = wait_for(APP_READY, "results in the window", || {
        one(&wd, "#your-part > li[data-check-id]")?;
        let state = wd.agent_state().ok()?;
        (!state["checking"].as_bool().unwrap_or(true)).then_some(state)
    })
    .unwrap_or_else(|e| panic!("{e:#}\ndriver log:\n{}", session.log("tauri-driver")));
    let results = state["results"].as_array().unwrap();
    let ids_of = |owner: &str| -> BTreeSet<String> {
        results
            .iter()
            .filter(|r| r["owner"] == owner)
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let rows_of = |list: &str| -> BTreeSet<String> {
        wd.find_all(&format!("#{list} > li[data-check-id]"))
            .unwrap()
            .iter()
            .map(|r| wd.attribute(r, "data-check-id").unwrap().unwrap())
            .collect()
    };
    wait_for(APP_READY, "the home view to show the latest state", || {
        (rows_of("your-part") == ids_of("user") && rows_of("it-part") == ids_of("it")).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}: user {:?} it {:?}, shown {:?} / {:?}",
            ids_of("user"),
            ids_of("it"),
            rows_of("your-part"),
            rows_of("it-part")
        )
    });
    let commitments: Vec<String> = wd
        .find_all("#it-part > li[data-commitment]")
        .unwrap()
        .iter()
        .map(|c| wd.attribute(c, "data-commitment").unwrap().unwrap())
        .collect();
    assert_eq!(commitments, ["Email filtering", "Backups"]);
    let counted: Vec<&Value> = results
        .iter()
        .filter(|r| r["owner"] == "user" && r["status"] != "not_applicable")
        .collect();
    let done = counted.iter().filter(|r| r["status"] == "pass").count();
    let score = text_of(&wd, "#score").unwrap();
    assert_eq!(
        score,
        format!("Your part: {done} of {} done", counted.len())
    );
    window_shot(&session, "home-light");

    // An item page, opened from its row; "Check again" runs the checks again.
    let first = one(&wd, "#your-part > li[data-check-id]").unwrap();
    let check = wd.attribute(&first, "data-check-id").unwrap().unwrap();
    wd.click(&one(&wd, "#your-part > li[data-check-id] a").unwrap())
        .unwrap();
    wait_for(APP_READY, "the item page", || {
        one(&wd, &format!("#item[data-check-id={check}]"))
    })
    .unwrap();
    let summary = text_of(&wd, "#item-summary").unwrap();
    let result = results.iter().find(|r| r["id"] == check.as_str()).unwrap();
    assert_eq!(summary, result["summary"].as_str().unwrap());
    window_shot(&session, "item-light");
    let before = wd.agent_state().unwrap()["last_check_at"].clone();
    let observed = |wd: &WebDriver| {
        wd.attribute(&one(wd, "#item-checked")?, "data-observed-at")
            .ok()?
    };
    let observed_before = observed(&wd).unwrap();
    wd.click(&one(&wd, "#check-again").unwrap()).unwrap();
    wait_for(APP_READY, "a new check run after Check again", || {
        let now = wd.agent_state().ok()?;
        (now["last_check_at"] != before && !now["checking"].as_bool().unwrap_or(true)).then_some(())
    })
    .unwrap();
    wait_for(APP_READY, "the item page to show the new result", || {
        (observed(&wd)? != observed_before).then_some(())
    })
    .unwrap();

    // Report phishing: a link and a note reach the server, and its tracking id is shown.
    go(&wd, "phishing");
    let url = one(&wd, "#phishing-url").unwrap();
    type_into(&wd, &url, "https://login.acme-payroll.example/verify");
    let note = one(&wd, "#phishing-note").unwrap();
    type_into(&wd, &note, "Came as a payroll notice; I did not click it.");
    // A blinking caret would keep the picture from settling.
    wd.execute_async(
        "const done = arguments[arguments.length - 1]; document.activeElement.blur(); done(null);",
    )
    .unwrap();
    window_shot(&session, "phishing-light");
    wd.click(&one(&wd, "#phishing-send").unwrap()).unwrap();
    let tracking = wait_for(APP_READY, "the tracking id", || {
        wd.attribute(&one(&wd, "#phishing-result")?, "data-tracking-id")
            .ok()?
    })
    .unwrap();
    assert!(tracking.starts_with("PH-"), "{tracking}");
    assert!(text_of(&wd, "#phishing-result")
        .unwrap()
        .contains(&tracking));
    let inbox = admin_get(&server, &admin, "/api/v1/admin/phishing-reports");
    let stored = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tracking_id"] == tracking.as_str())
        .unwrap_or_else(|| panic!("{tracking} is not in the server's inbox: {inbox}"));
    assert_eq!(stored["url"], "https://login.acme-payroll.example/verify");
    assert_eq!(
        stored["note"],
        "Came as a payroll notice; I did not click it."
    );
    window_shot(&session, "phishing-sent-light");

    // What IT can see: the report the server stored for this device, byte for byte.
    go(&wd, "it-can-see");
    let device_id = state["enrollment"]["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (shown_id, server_body) = wait_for(APP_READY, "the page and the server to agree", || {
        let shown = wd
            .attribute(&one(&wd, "#sent-report")?, "data-report-id")
            .ok()??;
        let device = admin_get(
            &server,
            &admin,
            &format!("/api/v1/admin/devices/{device_id}"),
        );
        let body = device["last_report"].as_str()?.to_owned();
        let stored: Value = serde_json::from_str(&body).ok()?;
        (stored["report_id"] == shown.as_str()).then_some((shown, body))
    })
    .unwrap();
    let sent = invoke(&wd, "last_sent_report");
    let sent_body = sent["body"].as_str().unwrap();
    let sent_id = serde_json::from_str::<Value>(sent_body).unwrap()["report_id"].clone();
    if sent_id == shown_id.as_str() {
        assert_eq!(
            sent_body, server_body,
            "the agent's copy is not what the server stored"
        );
    }
    // The verbatim text sits in a closed disclosure; its content is the stored report.
    let raw = wd
        .execute_async(
            "const done = arguments[arguments.length - 1];
             done(document.querySelector('#sent-report').textContent);",
        )
        .unwrap();
    let page: Value = serde_json::from_str(raw.as_str().unwrap()).unwrap();
    let stored: Value = serde_json::from_str(&server_body).unwrap();
    assert_eq!(page, stored, "the page does not show the stored report");
    // And the readable list names every result IT received.
    let listed: Vec<String> = wd
        .find_all("#sent-results > li[data-check-id]")
        .unwrap()
        .iter()
        .map(|r| wd.attribute(r, "data-check-id").unwrap().unwrap())
        .collect();
    let received: Vec<String> = stored["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, received);
    window_shot(&session, "it-can-see-light");

    go(&wd, "history");
    wait_for(APP_READY, "history entries", || one(&wd, "#history li")).unwrap();
    window_shot(&session, "history-light");

    // A language switch changes the words, and the choice is kept for the next window.
    go(&wd, "settings");
    window_shot(&session, "settings-light");
    assert_eq!(text_of(&wd, "#nav-home").unwrap(), "Overview");
    choose(&wd, "#language", "de");
    wait_for(APP_READY, "German words", || {
        (text_of(&wd, "#nav-home")? == "Übersicht").then_some(())
    })
    .unwrap();
    assert_eq!(text_of(&wd, "#nav-settings").unwrap(), "Einstellungen");
    go(&wd, "home");
    let score_de = text_of(&wd, "#score").unwrap();
    assert_eq!(
        score_de,
        format!("Ihr Teil: {done} von {} erledigt", counted.len())
    );
    window_shot(&session, "home-de-light");
    go(&wd, "settings");
    choose(&wd, "#language", "fr");
    wait_for(APP_READY, "French words", || {
        (text_of(&wd, "#nav-home")? == "Vue d’ensemble").then_some(())
    })
    .unwrap();
    choose(&wd, "#language", "en");

    // Dark: the same pages with the dark palette.
    choose(&wd, "#theme", "dark");
    go(&wd, "home");
    wait_for(APP_READY, "the home view", || one(&wd, "#your-part")).unwrap();
    window_shot(&session, "home-dark");
    wd.click(&one(&wd, "#your-part > li[data-check-id] a").unwrap())
        .unwrap();
    wait_for(APP_READY, "the item page", || one(&wd, "#item")).unwrap();
    window_shot(&session, "item-dark");
    go(&wd, "phishing");
    wait_for(APP_READY, "the phishing form", || one(&wd, "#phishing-url")).unwrap();
    window_shot(&session, "phishing-dark");
    go(&wd, "it-can-see");
    wait_for(APP_READY, "the report", || one(&wd, "#sent-results")).unwrap();
    window_shot(&session, "it-can-see-dark");
    go(&wd, "settings");
    choose(&wd, "#theme", "system");
    assert!(Path::new(&output_dir().unwrap().join("home-dark.png")).is_file());

    // Ctrl+W closes the window; the app stays, and no webview may stay behind it: WebKit's
    // helper processes must go with the window.
    let app = app_pid(&data).expect("the running tandem-desktop");
    assert!(
        !webkit_children(app).is_empty(),
        "no WebKit helpers while the window is open"
    );
    // The window is gone before the driver answers, so the answer may be "no such window".
    let _ = wd.call(
        reqwest::Method::POST,
        "/actions",
        Some(
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": "\u{E009}"},
                {"type": "keyDown", "value": "w"},
                {"type": "keyUp", "value": "w"},
                {"type": "keyUp", "value": "\u{E009}"}
            ]}]}),
        ),
    );
    // Closed, the window is hidden for the grace, then destroyed: X lists hidden windows
    // too, so the window leaving the list is its destruction.
    wait_for(
        APP_READY,
        "the window to be destroyed after Ctrl+W and the grace",
        || {
            session
                .windows_named("Tandem")
                .ok()?
                .is_empty()
                .then_some(())
        },
    )
    .unwrap();
    // The web processes (the page, its memory) go with the window. The network process
    // stays: on Linux tauri-runtime-wry keeps the web context for the app's lifetime, on
    // purpose, because WebKitGTK does not end its network process when a context has no
    // views left (tauri-apps/tauri#14626, `WebviewWrapper::drop`). One may stay, no more.
    let settled = wait_for(
        Duration::from_secs(15),
        "the WebKit web processes to exit",
        || {
            let left = webkit_children(app);
            left.iter()
                .all(|(_, n)| n.starts_with("WebKitNetwork"))
                .then_some(left)
        },
    );
    let left = settled.unwrap_or_else(|e| panic!("{e:#}: {:?}", webkit_children(app)));
    assert!(left.len() <= 1, "more than one network process: {left:?}");
}

/// The `tandem-desktop` process that runs on `data` (started by the WebDriver chain).
fn app_pid(data: &Path) -> Option<u32> {
    let want = format!("TANDEM_DATA_DIR={}", data.display());
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let has_env = environ.split(|b| *b == 0).any(|var| var == want.as_bytes());
            (comm.trim() == "tandem-desktop" && has_env).then_some(pid)
        })
}

/// WebKitGTK's helper processes (web, network) started by `pid`.
fn webkit_children(pid: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            let (_, rest) = stat.split_once('(')?;
            let (name, after) = rest.rsplit_once(')')?;
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid && name.starts_with("WebKit")).then(|| (child, name.to_owned()))
        })
        .collect()
}

/// A saved phishing message, with markup in its body that nothing may render.
const PHISHING_EML: &str = "From: \"Payroll\" <payroll@acme-payroll.example>\r\n\
    To: ada@acme.example\r\nSubject: Your salary statement is waiting\r\n\
    Content-Type: text/html\r\n\r\n<a href=\"https://acme-payroll.example/login\">Sign in</a>\r\n";

/// Issues 6 and 7: a saved message chosen through the window's file input reaches the
/// server and its tracking id is shown; once IT triages it with a reply (through the admin
/// API, as the console's form does), "Check for replies" shows the verdict and the reply as
/// text, and dunst shows the notification once.
#[test]
fn an_eml_reported_from_the_window_comes_back_with_it_s_reply() {
    let server = Server::start_sqlite().unwrap();
    let secret = server
        .admin_secret(&["enroll-secret", "create", "--group", "default"])
        .unwrap();
    let admin = server
        .admin_secret(&["token", "create", "--role", "admin"])
        .unwrap();
    let mut session = DesktopSession::with(SessionOptions {
        keyring: false,
        ..SessionOptions::default()
    })
    .unwrap();
    let env = app_env(&session);
    let data = session.dir().join("tandem");
    Tandem::new(&data)
        .env("TANDEM_CREDENTIAL_STORE", "file")
        .run_ok(&["enroll", "--server", &server.url, "--secret", &secret])
        .unwrap();
    let eml = session.dir().join("salary-statement.eml");
    std::fs::write(&eml, PHISHING_EML).unwrap();

    let wd = webdriver(&mut session, &env);
    wait_for(APP_READY, "the window", || one(&wd, "#nav-phishing"))
        .unwrap_or_else(|e| panic!("{e:#}\ndriver log:\n{}", session.log("tauri-driver")));
    go(&wd, "phishing");
    // The page may still be rendering when the radio is first clicked: click until the
    // file input shows.
    let input = wait_for(APP_READY, "the file input", || {
        if let Some(input) = one(&wd, "#phishing-file") {
            return Some(input);
        }
        wd.click(&one(&wd, "#kind-file")?).ok()?;
        None
    })
    .unwrap();
    // WebDriver's way of choosing a file: the path typed into the file input.
    wd.send_keys(&input, &eml.display().to_string()).unwrap();
    wait_for(APP_READY, "the chosen file's name", || {
        text_of(&wd, ".drop span").filter(|t| t.contains("salary-statement.eml"))
    })
    .unwrap();
    wd.click(&one(&wd, "#phishing-send").unwrap()).unwrap();
    let tracking = wait_for(APP_READY, "the tracking id", || {
        wd.attribute(&one(&wd, "#phishing-result")?, "data-tracking-id")
            .ok()?
    })
    .unwrap();
    assert!(tracking.starts_with("PH-"), "{tracking}");
    let row = format!("#phishing-sent li[data-tracking-id=\"{tracking}\"]");
    wait_for(APP_READY, "the report listed as received", || {
        wd.attribute(&one(&wd, &row)?, "data-triage").ok()?
    })
    .unwrap();

    // The server holds the message byte for byte.
    let inbox = admin_get(&server, &admin, "/api/v1/admin/phishing-reports");
    let stored = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tracking_id"] == tracking.as_str())
        .unwrap_or_else(|| panic!("{tracking} is not in the server's inbox: {inbox}"))
        .clone();
    assert_eq!(stored["subject"], "Your salary statement is waiting");
    assert_eq!(stored["message_bytes"], PHISHING_EML.len());

    // IT's verdict, with markup that must show as text.
    let reply = "Thanks — confirmed phishing. We blocked the sender.\n\
        <img src=x onerror=\"document.title='owned'\">";
    let answer = reqwest::blocking::Client::new()
        .put(format!(
            "{}/api/v1/admin/phishing-reports/{}/triage",
            server.url,
            stored["id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .json(&json!({"status": "phishing", "reply": reply}))
        .send()
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::NO_CONTENT);

    wd.click(&one(&wd, "#phishing-refresh").unwrap()).unwrap();
    wait_for(APP_READY, "the verdict in the window", || {
        (wd.attribute(&one(&wd, &row)?, "data-triage").ok()?? == "phishing").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tauri-driver")));
    let shown = text_of(&wd, &format!("{row} .reply-text")).unwrap();
    assert!(
        shown.contains("Thanks — confirmed phishing.")
            && shown.contains("<img src=x onerror=\"document.title='owned'\">"),
        "{shown:?}"
    );
    assert!(wd
        .find_all(&format!("{row} .reply img"))
        .unwrap()
        .is_empty());
    assert_eq!(
        text_of(&wd, &format!("{row} .badge")).as_deref(),
        Some("Confirmed phishing")
    );
    assert_ne!(wd.execute("return document.title;").unwrap(), "owned");
    wd.execute_async(
        "const done = arguments[arguments.length - 1]; document.activeElement.blur(); done(null);",
    )
    .unwrap();
    wd.execute(&format!(
        "document.querySelector({row:?}).scrollIntoView({{block: 'center'}}); return null;"
    ))
    .unwrap();
    // The page as the assertions saw it, from WebKit itself: the X screenshot waits for the
    // picture to settle, and the window need not stay on this page that long.
    let shot = wd.screenshot().unwrap();
    std::fs::write(output_dir().unwrap().join("phishing-reply-light.png"), shot).unwrap();

    // The reply was news once: one notification, not another on the next refresh. (An entry
    // of dunst's history holds the summary twice: alone, quoted, and in the message.)
    let history = || {
        let out = crate::desktop::output_within(
            session.command("dunstctl").arg("history"),
            Duration::from_secs(10),
        )
        .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let closed = || {
        crate::desktop::output_within(
            session.command("dunstctl").arg("close-all"),
            Duration::from_secs(10),
        )
        .unwrap()
    };
    wait_for(APP_READY, "IT's reply as a notification", || {
        closed();
        history()
            .contains("IT answered your phishing report")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\ndunst history: {}", history()));
    // Asked again (the command answers after the runtime has compared and announced).
    invoke(&wd, "refresh_phishing_reports");
    closed();
    assert_eq!(
        history()
            .matches("\"IT answered your phishing report\"")
            .count(),
        1,
        "{}",
        history()
    );
}

/// IT keeps "start at login" to itself: the Settings page shows the setting disabled and
/// says who manages it, and the shell refuses the change even when asked directly. The
/// language chosen there reaches the shell, which keeps it and rebuilds the tray menu in it.
#[test]
fn settings_show_autostart_managed_by_it_and_the_shell_keeps_the_language() {
    let mut session = DesktopSession::with(SessionOptions {
        keyring: false,
        ..SessionOptions::default()
    })
    .unwrap();
    let managed = session.dir().join("managed-policy.json");
    std::fs::write(
        &managed,
        r#"{"desktop": {"allow_autostart_toggle": false}}"#,
    )
    .unwrap();
    let mut env = app_env(&session);
    env.push(("TANDEM_MANAGED_POLICY", managed.display().to_string()));
    env.push(("LANG", "C.UTF-8".to_owned()));
    let wd = webdriver(&mut session, &env);

    go(&wd, "settings");
    let note = wait_for(APP_READY, "the managed note", || {
        text_of(&wd, "#autostart-managed")
    })
    .unwrap_or_else(|e| panic!("{e:#}\ndriver log:\n{}", session.log("tauri-driver")));
    assert_eq!(note, "Managed by IT");
    let toggle = one(&wd, "#autostart").unwrap();
    assert!(
        wd.attribute(&toggle, "disabled").unwrap().is_some(),
        "the toggle can be changed"
    );
    window_shot(&session, "settings-autostart-managed");
    // The refusal comes back as the script's error (WebKitWebDriver reports the rejected
    // promise), or as its answer: either way it must name IT.
    let refused = match wd.execute_async(
        "const done = arguments[arguments.length - 1];
         window.__TAURI_INTERNALS__.invoke('set_autostart', { enabled: true })
           .then((v) => done({ ok: v }), (e) => done({ error: String(e) }));",
    ) {
        Ok(answer) => answer.to_string(),
        Err(err) => format!("{err:#}"),
    };
    assert!(
        refused.contains("starting at login is managed by IT on this computer"),
        "{refused}"
    );

    // The language: kept by the shell next to the agent's store, and the menu follows.
    choose(&wd, "#language", "fr");
    let saved = session.dir().join("tandem/desktop.json");
    wait_for(APP_READY, "the shell to keep the language", || {
        std::fs::read_to_string(&saved)
            .ok()
            .filter(|s| s.contains("\"fr\""))
    })
    .unwrap_or_else(|e| panic!("{e:#}\ndriver log:\n{}", session.log("tauri-driver")));
    wait_for(APP_READY, "the tray menu in French", || {
        session
            .log("tauri-driver")
            .lines()
            .any(|l| l.contains("tray menu") && l.contains("\"fr\"") && l.contains("non inscrit"))
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\ndriver log:\n{}", session.log("tauri-driver")));
    assert_eq!(text_of(&wd, "#autostart-managed").unwrap(), "Géré par l’IT");
}
