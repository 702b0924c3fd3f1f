//! The console's handlers: one per page and one per form. Reads go through the same store
//! methods as the admin API; writes too, so each change is audited as `admin:<username>`.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::Value;
use tandem_proto::{CheckId, Policy, Status};
use uuid::Uuid;

use super::auth::{self, Session};
use super::fleet::{self, Category, Fleet};
use super::forms::{AdminForm, FormData, SessionForm};
use super::views::{self, *};
use super::{policy_form, svg, ConsoleError};
use crate::api::extract::PeerAddr;
use crate::api::SharedState;
use crate::store::console::{
    LoginFailure, NewConsoleAdmin, NewConsoleSession, OidcLinkOutcome, PhishingTriage,
    SignInFailure, TRIAGE_STATUSES,
};
use crate::store::{AuditQuery, ChangeBy, NewApiToken, Role};

type Page = Result<Response, ConsoleError>;

const TREND_DAYS: i64 = 30;
const DEVICE_ROWS: usize = 200;
const OVERDUE_ROWS: usize = 100;
const HISTORY_REPORTS: u32 = 30;
/// How much of a phishing message is shown.
const MESSAGE_SHOWN: usize = 64 * 1024;

fn by(session: &Session, state: &SharedState) -> ChangeBy {
    ChangeBy {
        actor: session.actor(),
        at: state.clock.now(),
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn parse_id(id: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(id).map_err(|_| ConsoleError::NotFound("no such item".into()))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Signing in and out

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    login_token: String,
}

fn login_response(
    state: &SharedState,
    status: StatusCode,
    error: Option<String>,
    username: String,
) -> Page {
    let token = crate::keys::new_secret();
    let mut resp = views::render(&LoginTpl {
        error,
        login_token: token.clone(),
        username,
        oidc: state.oidc.as_ref().map(|o| o.display_name().to_owned()),
    })?;
    *resp.status_mut() = status;
    resp.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(auth::LOGIN_COOKIE, &token, 3600),
    );
    Ok(resp)
}

pub async fn login_page(State(state): State<SharedState>) -> Page {
    login_response(&state, StatusCode::OK, None, String::new())
}

pub async fn login(
    State(state): State<SharedState>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Page {
    if !auth::sign_in_allowed(&state, peer) {
        return login_response(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some(auth::TOO_MANY_SIGN_INS.to_owned()),
            form.username,
        );
    }
    let fail = |message: &str, username: &str| {
        login_response(
            &state,
            StatusCode::UNAUTHORIZED,
            Some(message.to_owned()),
            username.to_owned(),
        )
    };
    // Double submit: the form must carry the value this browser's sign-in page set.
    let expected = auth::cookie(&headers, auth::LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || expected != form.login_token {
        return fail(
            "The sign-in form expired; please try again.",
            &form.username,
        );
    }
    let generic = "Wrong username, password or code.";
    if form.username.len() > 64 || form.password.len() > 1024 {
        return fail(generic, "");
    }
    let now = state.clock.now();
    let Some(account) = state
        .store
        .console_admin_by_username(&form.username)
        .await?
    else {
        auth::verify_nothing(&form.password);
        // Debug-formatted: the name is the requester's and may hold line breaks.
        tracing::warn!(username = ?form.username, "console sign-in to an unknown account");
        return fail(generic, &form.username);
    };
    // Every outcome on an existing account is audited (`console.sign_in_failed` with its
    // reason, never the password or code); unknown usernames are only logged.
    let failed = |reason: SignInFailure| {
        state.store.console_login_failed(
            account.id,
            reason,
            now,
            auth::MAX_FAILURES,
            Duration::minutes(auth::LOCK_MINUTES),
        )
    };
    if account.disabled {
        auth::verify_nothing(&form.password);
        failed(SignInFailure::Disabled).await?;
        return fail(generic, &form.username);
    }
    if let Some(until) = account.locked_until.filter(|u| *u > now) {
        failed(SignInFailure::Locked).await?;
        return fail(
            &format!(
                "Too many failed attempts: this account is locked until {}.",
                views::time(until)
            ),
            &form.username,
        );
    }
    let password_ok = auth::verify_password(&form.password, &account.password_hash);
    let step = auth::totp_verify(&account.totp_secret, &form.code, now);
    let (true, Some(step)) = (password_ok, step) else {
        let reason = if password_ok {
            SignInFailure::BadTotp
        } else {
            SignInFailure::BadPassword
        };
        let outcome = failed(reason).await?;
        tracing::warn!(username = %account.username, reason = reason.as_str(), "console sign-in failed");
        return match outcome {
            LoginFailure::Locked(until) => fail(
                &format!(
                    "Too many failed attempts: this account is locked until {}.",
                    views::time(until)
                ),
                &form.username,
            ),
            LoginFailure::Counted => fail(generic, &form.username),
        };
    };
    let token = auth::new_session_token();
    let opened = state
        .store
        .console_login_succeeded(
            step,
            &NewConsoleSession {
                token_hash: crate::keys::hash_secret(&token),
                admin_id: account.id,
                created_at: now,
                expires_at: now + Duration::hours(auth::SESSION_HOURS),
            },
        )
        .await?;
    if !opened {
        failed(SignInFailure::TotpReused).await?;
        return fail(
            "That code was used already; wait for the next one.",
            &form.username,
        );
    }
    tracing::info!(username = %account.username, "console sign-in");
    let mut resp = see_other("/console");
    resp.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(auth::SESSION_COOKIE, &token, auth::SESSION_HOURS * 3600),
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(auth::LOGIN_COOKIE, "", 0),
    );
    Ok(resp)
}

pub async fn logout(State(state): State<SharedState>, f: SessionForm) -> Page {
    state
        .store
        .delete_console_session(&f.session.token_hash(), state.clock.now())
        .await?;
    let mut resp = see_other("/console/login");
    resp.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(auth::SESSION_COOKIE, "", 0),
    );
    Ok(resp)
}

// ---------------------------------------------------------------------------------------
// Fleet overview

#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    #[serde(default)]
    group: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    check: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    q: String,
}

fn distribution(n: [i64; 4]) -> Vec<(String, String, &'static str)> {
    let total: i64 = n.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    let mut x = 0.0;
    let mut out = Vec::new();
    for (count, class) in n
        .iter()
        .zip(["seg-pass", "seg-due", "seg-overdue", "seg-unknown"])
    {
        if *count == 0 {
            continue;
        }
        let w = *count as f64 / total as f64 * 100.0;
        out.push((format!("{x:.2}"), format!("{w:.2}"), class));
        x += w;
    }
    out
}

fn percent(pass: i64, total: i64) -> String {
    if total == 0 {
        "—".to_owned()
    } else {
        format!("{:.0}%", pass as f64 / total as f64 * 100.0)
    }
}

pub async fn fleet(
    State(state): State<SharedState>,
    session: Session,
    Query(query): Query<FleetQuery>,
) -> Page {
    let fleet = Fleet::load(&state).await?;
    let today = fleet.now.date_naive();
    let history = state
        .store
        .daily_compliance(today - Duration::days(TREND_DAYS - 1))
        .await?;
    let points = svg::trend(&history, today, TREND_DAYS, None);
    let bars = svg::stacked_bars(&points, today, TREND_DAYS, 1100.0, 160.0);

    let counts = fleet.counts();
    let (mut all_pass, mut all_total) = (0, 0);
    let checks = counts
        .iter()
        .map(|(check, n)| {
            let total: i64 = n.iter().sum();
            all_pass += n[0];
            all_total += total;
            let points = svg::trend(&history, today, TREND_DAYS, Some(check.as_str()));
            let (spark, spark_dot) = svg::sparkline(&points, today, TREND_DAYS, 120.0, 24.0);
            CheckRow {
                id: check.as_str().to_owned(),
                title: check.title().to_owned(),
                pass: n[0],
                due: n[1],
                overdue: n[2],
                unknown: n[3],
                pct: percent(n[0], total),
                bar: distribution(*n),
                spark,
                spark_dot,
            }
        })
        .collect();

    let mut overdue = Vec::new();
    let mut overdue_devices = 0;
    for d in &fleet.devices {
        let mut any = false;
        for (check, category, due) in &d.checks {
            if *category == Category::Overdue {
                any = true;
                overdue.push(OverdueRow {
                    device_id: d.summary.device.id.to_string(),
                    hostname: d.summary.device.hostname.clone(),
                    user: d.summary.device.user_login.clone(),
                    group: d.summary.device.group.clone(),
                    check: check.title().to_owned(),
                    days: due.map_or(0, |t| (fleet.now - t).num_days()),
                });
            }
        }
        overdue_devices += usize::from(any);
    }
    overdue.sort_by_key(|o| std::cmp::Reverse(o.days));
    overdue.truncate(OVERDUE_ROWS);

    let check_filter = query.check.parse::<CheckId>().ok();
    let status_filter = Category::parse(&query.status);
    let q = query.q.trim().to_lowercase();
    let matching: Vec<&fleet::DeviceState> = fleet
        .devices
        .iter()
        .filter(|d| {
            let dev = &d.summary.device;
            (query.group.is_empty() || dev.group == query.group)
                && (query.os.is_empty() || dev.os == query.os)
                && (q.is_empty()
                    || dev.hostname.to_lowercase().contains(&q)
                    || dev.user_login.to_lowercase().contains(&q))
                && match (check_filter, status_filter) {
                    (Some(c), Some(s)) => d.category(c) == Some(s),
                    (Some(c), None) => d.category(c).is_some(),
                    (None, Some(s)) => d.checks.iter().any(|(_, cat, _)| *cat == s),
                    (None, None) => true,
                }
        })
        .collect();
    let devices = matching
        .iter()
        .take(DEVICE_ROWS)
        .map(|d| {
            let dev = &d.summary.device;
            let n = |c| d.checks.iter().filter(|(_, cat, _)| *cat == c).count();
            let mut problems = Vec::new();
            if n(Category::Overdue) > 0 {
                problems.push(format!("{} overdue", n(Category::Overdue)));
            }
            if n(Category::Due) > 0 {
                problems.push(format!("{} due", n(Category::Due)));
            }
            DeviceRow {
                id: dev.id.to_string(),
                hostname: dev.hostname.clone(),
                user: dev.user_login.clone(),
                group: dev.group.clone(),
                os: format!("{} {}", dev.os, dev.os_version),
                last_report: views::ago(fleet.now, dev.last_report_at),
                worst: d.worst().map_or("unknown", Category::as_str),
                problems: problems.join(", "),
            }
        })
        .collect();

    let groups: BTreeSet<&str> = fleet.policies.keys().map(String::as_str).collect();
    let oses: BTreeSet<&str> = fleet
        .devices
        .iter()
        .map(|d| d.summary.device.os.as_str())
        .collect();
    let t = FleetTpl {
        page: PageCtx::new(&session, "Fleet overview", "fleet"),
        checks,
        bars,
        trend_days: TREND_DAYS,
        trend_from: (today - Duration::days(TREND_DAYS - 1))
            .format("%d %b")
            .to_string(),
        trend_to: today.format("%d %b").to_string(),
        overall_pct: percent(all_pass, all_total),
        device_count: fleet.devices.len(),
        overdue_devices,
        overdue,
        matching: matching.len(),
        devices,
        groups: groups
            .iter()
            .map(|g| ((*g).to_owned(), *g == query.group))
            .collect(),
        oses: oses
            .iter()
            .map(|o| ((*o).to_owned(), *o == query.os))
            .collect(),
        check_options: CheckId::ALL
            .iter()
            .map(|c| {
                (
                    c.as_str().to_owned(),
                    c.title().to_owned(),
                    Some(*c) == check_filter,
                )
            })
            .collect(),
        status_options: ["pass", "due", "overdue", "unknown"]
            .iter()
            .map(|s| ((*s).to_owned(), *s == query.status))
            .collect(),
        export_query: String::new(),
        filters: Filters {
            group: query.group,
            os: query.os,
            check: query.check,
            status: query.status,
            q: query.q,
        },
    };
    views::render(&t)
}

// ---------------------------------------------------------------------------------------
// Device page

/// Statuses of each check in stored reports, oldest first, read leniently: a report is the
/// device's own text, so anything that does not parse is skipped, not trusted.
fn history_of(
    bodies: &[crate::store::console::StoredReportBody],
) -> (Vec<String>, Vec<HistoryRow>) {
    let mut times = Vec::new();
    let mut per_check: HashMap<CheckId, Vec<(String, String)>> = HashMap::new();
    for (i, body) in bodies.iter().rev().enumerate() {
        times.push(views::time(body.received_at));
        let Ok(doc) = serde_json::from_str::<Value>(&body.body) else {
            continue;
        };
        for r in doc
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = r
                .get("id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<CheckId>().ok());
            let status = r
                .get("status")
                .and_then(|s| serde_json::from_value::<Status>(s.clone()).ok());
            if let (Some(id), Some(status)) = (id, status) {
                let cells = per_check.entry(id).or_default();
                while cells.len() < i {
                    cells.push(("none".into(), "not reported".into()));
                }
                cells.push((
                    status.as_str().to_owned(),
                    format!("{}: {}", views::time(body.received_at), status.as_str()),
                ));
            }
        }
    }
    let rows = CheckId::ALL
        .iter()
        .filter_map(|id| {
            per_check.remove(id).map(|cells| HistoryRow {
                title: id.title().to_owned(),
                cells,
            })
        })
        .collect();
    (times, rows)
}

pub async fn device(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> Page {
    let id = parse_id(&id)?;
    let detail = state
        .store
        .device_detail(id, crate::api::admin::DEVICE_HISTORY)
        .await?
        .ok_or_else(|| ConsoleError::NotFound("no such device".into()))?;
    let now = state.clock.now();
    let dev = &detail.summary.device;
    let current = crate::policy::effective(&*state.store, &dev.group).await?;
    let policy = fleet::lenient(&current.body);
    state.store.refresh_failing_since().await?;
    let streaks: HashMap<(Uuid, String), chrono::DateTime<Utc>> = state
        .store
        .failing_since()
        .await?
        .into_iter()
        .filter(|(d, _, _)| *d == id)
        .map(|(d, c, t)| ((d, c), t))
        .collect();
    let categories = fleet::device_checks(&detail.summary, &policy, &streaks, now);
    let results = dev
        .results
        .iter()
        .map(|r| {
            let cat = categories.iter().find(|(c, _, _)| *c == r.id);
            ResultView {
                title: r.id.title().to_owned(),
                id: r.id.as_str().to_owned(),
                status: r.status.as_str().to_owned(),
                category: cat.map_or("not-counted", |(_, c, _)| c.as_str()),
                summary: r.summary.clone(),
                reason: r.reason.clone().unwrap_or_default(),
                details: pretty(&r.details),
                evidence: r
                    .evidence
                    .iter()
                    .map(|e| (e.source.clone(), e.excerpt.clone()))
                    .collect(),
                observed: views::time(r.observed_at),
                deadline: cat
                    .and_then(|(_, _, due)| *due)
                    .map(views::time)
                    .unwrap_or_default(),
            }
        })
        .collect();
    let bodies = state
        .store
        .device_report_bodies(id, HISTORY_REPORTS)
        .await?;
    let (history_times, history) = history_of(&bodies);
    let in_force = detail.summary.applied_policy_etag.as_deref() == Some(current.etag.as_str());
    let policy_line = match (&detail.summary.applied_policy_etag, dev.policy_version) {
        _ if in_force => format!(
            "Policy in force: {} version {} (the agent applied it).",
            current.group, current.version
        ),
        (Some(_), Some(v)) => format!(
            "The agent last received version {v}; its last report says it applied another \
             version than {} v{} (the current one).",
            current.group, current.version
        ),
        (_, Some(v)) => format!(
            "Delivered version {v}; the agent has not yet reported applying {} v{}.",
            current.group, current.version
        ),
        (_, None) => format!(
            "The agent has not fetched a policy yet; {} v{} awaits it.",
            current.group, current.version
        ),
    };
    let facts = vec![
        ("User", dev.user_login.clone()),
        ("Email", detail.user_email.clone().unwrap_or_default()),
        ("Group", dev.group.clone()),
        ("OS", format!("{} {}", dev.os, dev.os_version)),
        ("Model", detail.model.clone().unwrap_or_default()),
        ("Serial", detail.serial.clone().unwrap_or_default()),
        ("Agent", detail.agent_version.clone().unwrap_or_default()),
        ("Enrolled", views::time(dev.enrolled_at)),
        ("Last report", views::ago(now, dev.last_report_at)),
        ("Device id", dev.id.to_string()),
        ("Machine id", detail.machine_id.clone()),
    ];
    let events = detail
        .events
        .iter()
        .map(|e| EventRow {
            at: views::time(e.at),
            kind: e.kind.as_str().replace('_', " "),
            check: e.check_id.map(|c| c.title().to_owned()).unwrap_or_default(),
            detail: e.detail.clone().unwrap_or_default(),
        })
        .collect();
    let raw = detail
        .last_report
        .as_deref()
        .map(|r| {
            serde_json::from_str::<Value>(r)
                .map(|v| pretty(&v))
                .unwrap_or_else(|_| r.to_owned())
        })
        .unwrap_or_else(|| "No report yet.".to_owned());
    let t = DeviceTpl {
        page: PageCtx::new(&session, "Device", "fleet"),
        id: dev.id.to_string(),
        hostname: dev.hostname.clone(),
        facts,
        revoked: detail.revoked_at.is_some(),
        policy_line,
        policy_in_force: in_force,
        results,
        history,
        history_times,
        events,
        raw,
    };
    views::render(&t)
}

pub async fn revoke_device(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    f: AdminForm,
) -> Page {
    let id = parse_id(&id)?;
    if !state
        .store
        .revoke_device(id, &by(&f.session, &state))
        .await?
    {
        return Err(ConsoleError::NotFound("no such device".into()));
    }
    tracing::info!(device_id = %id, actor = %f.session.actor(), "device revoked");
    Ok(see_other(&format!("/console/devices/{id}")))
}

// ---------------------------------------------------------------------------------------
// Policies

pub async fn policies(State(state): State<SharedState>, session: Session) -> Page {
    let groups = state
        .store
        .list_groups()
        .await?
        .into_iter()
        .map(|g| GroupRow {
            follows_default: g.policy_version.is_none(),
            version: g.policy_version.map(|v| v.to_string()).unwrap_or_default(),
            name: g.name,
            devices: g.devices,
        })
        .collect();
    views::render(&PoliciesTpl {
        page: PageCtx::new(&session, "Policies", "policies"),
        groups,
    })
}

async fn existing_group(state: &SharedState, group: &str) -> Result<(), ConsoleError> {
    crate::policy::check_group_name(group).map_err(ConsoleError::NotFound)?;
    if state.store.group_exists(group).await? {
        Ok(())
    } else {
        Err(ConsoleError::NotFound(format!("no group named {group}")))
    }
}

fn change_rows(before: &Value, after: &Value) -> Vec<ChangeRow> {
    let show = |v: &Option<Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    crate::diff::diff(before, after)
        .into_iter()
        .map(|c| ChangeRow {
            op: serde_json::to_value(c.op)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            pointer: c.pointer.clone(),
            before: show(&c.before),
            after: show(&c.after),
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct PolicyQuery {
    version: Option<i64>,
    pushed: Option<i64>,
}

async fn policy_page(
    state: &SharedState,
    session: &Session,
    group: &str,
    error: Option<String>,
    notice: Option<String>,
    submitted: Option<(Value, String)>,
    viewing: Option<i64>,
) -> Page {
    let current = crate::policy::effective(&*state.store, group).await?;
    let source = if current.group == group {
        format!("{group} has its own policy, version {}.", current.version)
    } else if current.version == 0 {
        format!("{group} follows the built-in defaults (no policy stored yet).")
    } else {
        format!(
            "{group} follows the default group's version {}; saving creates its own.",
            current.version
        )
    };
    let (form_doc, raw) = match submitted {
        Some((doc, raw)) => (doc, raw),
        None => (current.body.clone(), pretty(&current.body)),
    };
    let versions = state.store.policy_versions(group).await?;
    let own_latest = versions.last().map(|v| v.version);
    let viewing = match viewing {
        Some(v) => {
            let detail = state
                .store
                .policy_version(group, v)
                .await?
                .ok_or_else(|| ConsoleError::NotFound(format!("{group} has no version {v}")))?;
            Some((
                v,
                pretty(&detail.policy),
                change_rows(&current.body, &detail.policy),
            ))
        }
        None => None,
    };
    let t = PolicyTpl {
        page: PageCtx::new(session, format!("Policy: {group}"), "policies"),
        group: group.to_owned(),
        source,
        sections: policy_form::sections(&form_doc),
        raw,
        versions: versions
            .into_iter()
            .rev()
            .map(|v| VersionRow {
                current: Some(v.version) == own_latest,
                version: v.version,
                created: views::time(v.created_at),
                by: v.created_by,
            })
            .collect(),
        error,
        notice,
        viewing,
    };
    let mut resp = views::render(&t)?;
    if t.error.is_some() {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(resp)
}

pub async fn policy(
    State(state): State<SharedState>,
    session: Session,
    Path(group): Path<String>,
    Query(query): Query<PolicyQuery>,
) -> Page {
    existing_group(&state, &group).await?;
    let notice = query
        .pushed
        .map(|v| format!("Version {v} pushed: agents following {group} receive it now."));
    policy_page(&state, &session, &group, None, notice, None, query.version).await
}

/// The document a preview form describes, or the message to show beside the form.
fn submitted_document(current: &Value, form: &FormData) -> Result<Value, (String, Value, String)> {
    match form.get("mode") {
        Some("raw") => {
            let raw = form.get("raw").unwrap_or_default().to_owned();
            let doc: Value = serde_json::from_str(&raw).map_err(|e| {
                (
                    format!("The JSON does not parse: {e}"),
                    current.clone(),
                    raw.clone(),
                )
            })?;
            Ok(doc)
        }
        _ => policy_form::apply(current, form).map_err(|e| (e, current.clone(), pretty(current))),
    }
}

/// What pushing a policy would do to the devices following it.
struct Impact {
    devices: usize,
    changing: usize,
    /// (category, before, after) totals.
    moves: Vec<(String, i64, i64)>,
    /// Device checks judged again from their evidence (`reevaluate.rs`).
    reevaluated: usize,
    /// (hostname, check, why) of the checks whose changed threshold could not be judged.
    not_evaluated: Vec<(String, &'static str, &'static str)>,
}

/// Counts, under the old and the new policy, each category over the group's devices, and
/// how many devices change state. Results measured against a threshold the new policy
/// changes (password age, screen lock, update grace) are judged again from each device's
/// last evidence, as its agent will judge them.
async fn impact(state: &SharedState, group: &str, new: &Policy) -> Result<Impact, ConsoleError> {
    let fleet = Fleet::load(state).await?;
    // Devices whose effective policy this is: the group's own, and for the default group
    // every group that follows it.
    let follows: BTreeSet<String> = if group == crate::store::DEFAULT_GROUP {
        let mut set = BTreeSet::new();
        for g in state.store.list_groups().await? {
            if g.policy_version.is_none() || g.name == group {
                set.insert(g.name);
            }
        }
        set
    } else {
        std::iter::once(group.to_owned()).collect()
    };
    let mut before = [0i64; 4];
    let mut after = [0i64; 4];
    let (mut devices, mut changing) = (0, 0);
    let (mut reevaluated, mut not_evaluated) = (0, Vec::new());
    for d in fleet
        .devices
        .iter()
        .filter(|d| follows.contains(&d.summary.device.group))
    {
        devices += 1;
        let old_policy = fleet
            .policies
            .get(&d.summary.device.group)
            .cloned()
            .unwrap_or_default();
        let (judged, unjudged, n) =
            super::reevaluate::summary_under(&d.summary, &old_policy, new, fleet.now);
        reevaluated += n;
        not_evaluated.extend(
            unjudged
                .into_iter()
                .map(|(check, why)| (d.summary.device.hostname.clone(), check.as_str(), why)),
        );
        let next = fleet::device_checks(&judged, new, &fleet.streaks, fleet.now);
        for (_, c, _) in &d.checks {
            before[*c as usize] += 1;
        }
        for (_, c, _) in &next {
            after[*c as usize] += 1;
        }
        let old: Vec<(CheckId, Category)> = d.checks.iter().map(|(i, c, _)| (*i, *c)).collect();
        let new: Vec<(CheckId, Category)> = next.iter().map(|(i, c, _)| (*i, *c)).collect();
        changing += usize::from(old != new);
    }
    let moves = [
        Category::Pass,
        Category::Due,
        Category::Overdue,
        Category::Unknown,
    ]
    .iter()
    .map(|c| {
        (
            c.as_str().to_owned(),
            before[*c as usize],
            after[*c as usize],
        )
    })
    .collect();
    Ok(Impact {
        devices,
        changing,
        moves,
        reevaluated,
        not_evaluated,
    })
}

pub async fn policy_preview(
    State(state): State<SharedState>,
    Path(group): Path<String>,
    f: AdminForm,
) -> Page {
    existing_group(&state, &group).await?;
    let current = crate::policy::effective(&*state.store, &group).await?;
    let doc = match submitted_document(&current.body, &f.form) {
        Ok(doc) => doc,
        Err((message, form_doc, raw)) => {
            return policy_page(
                &state,
                &f.session,
                &group,
                Some(message),
                None,
                Some((form_doc, raw)),
                None,
            )
            .await
        }
    };
    let parsed = match Policy::parse_strict(&doc) {
        Ok(p) => p,
        Err(e) => {
            let raw = pretty(&doc);
            return policy_page(
                &state,
                &f.session,
                &group,
                Some(format!("The policy is not valid: {e}")),
                None,
                Some((current.body.clone(), raw)),
                None,
            )
            .await;
        }
    };
    let impact = impact(&state, &group, &parsed).await?;
    views::render(&PreviewTpl {
        page: PageCtx::new(&f.session, format!("Review: {group}"), "policies"),
        changes: change_rows(&current.body, &doc),
        doc: pretty(&doc),
        group,
        devices: impact.devices,
        changing: impact.changing,
        moves: impact.moves,
        reevaluated: impact.reevaluated,
        not_evaluated: impact.not_evaluated,
    })
}

pub async fn policy_push(
    State(state): State<SharedState>,
    Path(group): Path<String>,
    f: AdminForm,
) -> Page {
    existing_group(&state, &group).await?;
    let raw = f.form.get("policy").unwrap_or_default();
    let doc: Value = serde_json::from_str(raw)
        .map_err(|e| ConsoleError::BadRequest(format!("the policy does not parse: {e}")))?;
    let outcome = crate::policy::push(
        &*state.store,
        &state.hub,
        &group,
        doc,
        f.session.actor(),
        state.clock.now(),
    )
    .await
    .map_err(|e| match e {
        crate::policy::PushPolicyError::Store(e) => ConsoleError::Store(e),
        other => ConsoleError::BadRequest(other.to_string()),
    })?;
    let p = outcome.policy();
    tracing::info!(group = %p.group, version = p.version, actor = %f.session.actor(), "policy pushed from the console");
    Ok(see_other(&format!(
        "/console/policies/{group}?pushed={}",
        p.version
    )))
}

pub async fn create_group(State(state): State<SharedState>, f: AdminForm) -> Page {
    let name = f.form.text("name").unwrap_or_default().to_owned();
    crate::policy::check_group_name(&name).map_err(ConsoleError::BadRequest)?;
    state
        .store
        .create_group(&name, &by(&f.session, &state))
        .await?;
    Ok(see_other(&format!("/console/policies/{name}")))
}

// ---------------------------------------------------------------------------------------
// Enrolment

/// The server's address as the admin's browser reached it, for copy-ready commands.
fn server_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("tandem.example.com");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or(
            if host.starts_with("127.") || host.starts_with("localhost") {
                "http"
            } else {
                "https"
            },
        );
    format!("{proto}://{host}")
}

fn install_commands(url: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Debian / Ubuntu",
            format!("sudo apt install ./tandem_amd64.deb\ntandem enroll --server {url} --secret '{secret}'"),
        ),
        (
            "Fedora / RHEL",
            format!("sudo dnf install ./tandem.x86_64.rpm\ntandem enroll --server {url} --secret '{secret}'"),
        ),
        (
            "macOS (Terminal)",
            format!("sudo installer -pkg Tandem.pkg -target /\n/Applications/Tandem.app/Contents/MacOS/tandem enroll --server {url} --secret '{secret}'"),
        ),
        (
            "Windows (PowerShell as administrator)",
            format!("msiexec /i Tandem.msi /qn\n& \"$env:ProgramFiles\\Tandem\\tandem.exe\" enroll --server {url} --secret '{secret}'"),
        ),
    ]
}

async fn enrollment_page(
    state: &SharedState,
    session: &Session,
    created: Option<CreatedSecret>,
    error: Option<String>,
) -> Page {
    let now = state.clock.now();
    let secrets = state
        .store
        .list_enroll_secrets()
        .await?
        .into_iter()
        .map(|s| SecretRow {
            id: s.id.to_string(),
            usable: s.usable_at(now),
            group: s.group.clone(),
            created: views::time(s.created_at),
            by: s.created_by.clone().unwrap_or_default(),
            expires: s
                .revoked_at
                .map(|t| format!("expired by hand {}", views::time(t)))
                .or_else(|| s.expires_at.map(views::time))
                .unwrap_or_else(|| "never".to_owned()),
            uses: match s.max_uses {
                Some(m) => format!("{} of {m}", s.uses),
                None => s.uses.to_string(),
            },
        })
        .collect();
    let groups = state
        .store
        .list_groups()
        .await?
        .into_iter()
        .map(|g| g.name)
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut resp = views::render(&EnrollmentTpl {
        page: PageCtx::new(session, "Enrolment", "enrollment"),
        secrets,
        groups,
        created,
        error,
    })?;
    *resp.status_mut() = status;
    Ok(resp)
}

pub async fn enrollment(State(state): State<SharedState>, session: Session) -> Page {
    enrollment_page(&state, &session, None, None).await
}

fn opt_number(form: &FormData, name: &str) -> Result<Option<u32>, String> {
    form.text(name)
        .map(|v| {
            v.parse::<u32>()
                .map_err(|_| format!("{name} must be a whole number"))
        })
        .transpose()
}

pub async fn create_secret(
    State(state): State<SharedState>,
    headers: HeaderMap,
    f: AdminForm,
) -> Page {
    let group = f.form.text("group").unwrap_or("default").to_owned();
    let parsed = opt_number(&f.form, "expires_in_days")
        .and_then(|e| opt_number(&f.form, "max_uses").map(|m| (e, m)));
    let (expires, max_uses) = match parsed {
        Ok(v) => v,
        Err(e) => return enrollment_page(&state, &f.session, None, Some(e)).await,
    };
    if expires == Some(0) || expires.is_some_and(|d| d > 3650) {
        let e = "Expiry must be between 1 and 3650 days.".to_owned();
        return enrollment_page(&state, &f.session, None, Some(e)).await;
    }
    let options = crate::EnrollSecretOptions {
        group: group.clone(),
        expires_in: expires.map(|d| Duration::days(d.into())),
        max_uses,
        actor: f.session.actor(),
    };
    match crate::create_enroll_secret(&*state.store, state.clock.now(), &options).await {
        Ok(created) => {
            let url = server_url(&headers);
            let commands = install_commands(&url, &created.secret);
            let view = CreatedSecret {
                secret: created.secret,
                group,
                commands,
            };
            enrollment_page(&state, &f.session, Some(view), None).await
        }
        Err(crate::ServerError::InvalidArgument(m)) => {
            enrollment_page(&state, &f.session, None, Some(m)).await
        }
        Err(crate::ServerError::Store(e)) => Err(e.into()),
        Err(other) => Err(ConsoleError::BadRequest(other.to_string())),
    }
}

pub async fn expire_secret(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    f: AdminForm,
) -> Page {
    let id = parse_id(&id)?;
    state
        .store
        .expire_enroll_secret(id, &by(&f.session, &state))
        .await?
        .ok_or_else(|| ConsoleError::NotFound("no such secret".into()))?;
    Ok(see_other("/console/enrollment"))
}

// Identity sources: see `integrations.rs`.

// ---------------------------------------------------------------------------------------
// Phishing inbox

pub async fn phishing(State(state): State<SharedState>, session: Session) -> Page {
    let triage: HashMap<Uuid, PhishingTriage> = state
        .store
        .list_phishing_triage()
        .await?
        .into_iter()
        .map(|t| (t.report_id, t))
        .collect();
    let reports = state
        .store
        .list_phishing_reports(200, 0)
        .await?
        .into_iter()
        .map(|r| PhishingRow {
            id: r.id.to_string(),
            tracking: r.tracking_id.clone(),
            received: views::time(r.received_at),
            reporter: r.user_email.clone().unwrap_or(r.user_login.clone()),
            hostname: r.hostname.clone(),
            subject: r
                .subject
                .clone()
                .or(r.url.clone())
                .unwrap_or_else(|| "(no subject)".into()),
            kind: if r.message_bytes.is_some() {
                "message".into()
            } else {
                "link".into()
            },
            status: triage
                .get(&r.id)
                .map_or("new".to_owned(), |t| t.status.clone()),
        })
        .collect();
    views::render(&PhishingTpl {
        page: PageCtx::new(&session, "Phishing inbox", "phishing"),
        reports,
    })
}

/// Header fields worth showing, URLs and attachment names found in a message's text. A
/// plain scan, not a MIME parser: it lists what is there without decoding or rendering it.
fn inspect_message(text: &str) -> (Vec<(String, String)>, Vec<String>, Vec<String>) {
    let mut headers = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let known = ["from", "to", "reply-to", "subject", "date", "return-path"];
            if known.contains(&name.trim().to_ascii_lowercase().as_str()) {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
    }
    let mut urls = BTreeSet::new();
    for start in ["http://", "https://"] {
        let mut rest = text;
        while let Some(i) = rest.find(start) {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')'))
                .unwrap_or(tail.len());
            urls.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    let mut attachments = BTreeSet::new();
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        if let Some(i) = lower.find("filename=") {
            let name = line[i + 9..].trim().trim_matches(|c| c == '"' || c == ';');
            if !name.is_empty() {
                attachments.insert(name.to_owned());
            }
        }
    }
    (
        headers,
        urls.into_iter().take(200).collect(),
        attachments.into_iter().collect(),
    )
}

pub async fn phishing_report(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> Page {
    let id = parse_id(&id)?;
    // The inbox is small enough to scan; the store has no single-report read.
    let report = state
        .store
        .list_phishing_reports(10_000, 0)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ConsoleError::NotFound("no such report".into()))?;
    let message = state.store.phishing_message(id).await?.unwrap_or_default();
    let truncated = message.len() > MESSAGE_SHOWN;
    let text = String::from_utf8_lossy(&message[..message.len().min(MESSAGE_SHOWN)]).into_owned();
    let (headers, mut urls, attachments) = inspect_message(&text);
    if let Some(u) = &report.url {
        urls.insert(0, u.clone());
    }
    let triage = state
        .store
        .list_phishing_triage()
        .await?
        .into_iter()
        .find(|t| t.report_id == id);
    let status = triage.as_ref().map_or("new", |t| t.status.as_str());
    let facts = vec![
        ("Tracking id", report.tracking_id.clone()),
        ("Received", views::time(report.received_at)),
        (
            "Reported by",
            report
                .user_email
                .clone()
                .unwrap_or(report.user_login.clone()),
        ),
        ("Device", report.hostname.clone()),
        ("Subject", report.subject.clone().unwrap_or_default()),
        ("Reporter's note", report.note.clone().unwrap_or_default()),
    ];
    let t = PhishingReportTpl {
        page: PageCtx::new(
            &session,
            format!("Report {}", report.tracking_id),
            "phishing",
        ),
        id: id.to_string(),
        facts,
        headers,
        urls,
        attachments,
        raw: if message.is_empty() {
            "(a link report: no message was uploaded)".to_owned()
        } else {
            text
        },
        truncated,
        statuses: TRIAGE_STATUSES.iter().map(|s| (*s, *s == status)).collect(),
        reply: triage
            .as_ref()
            .and_then(|t| t.reply.clone())
            .unwrap_or_default(),
        triaged: triage.map_or("Not triaged yet.".to_owned(), |t| {
            format!(
                "Last triaged by {} at {}.",
                t.updated_by,
                views::time(t.updated_at)
            )
        }),
    };
    views::render(&t)
}

pub async fn phishing_triage(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    f: AdminForm,
) -> Page {
    let id = parse_id(&id)?;
    let status = f.form.get("status").unwrap_or_default();
    if !TRIAGE_STATUSES.contains(&status) {
        return Err(ConsoleError::BadRequest("unknown triage status".into()));
    }
    let reply = f.form.text("reply").map(str::to_owned);
    if reply.as_ref().is_some_and(|r| r.len() > 2000) {
        return Err(ConsoleError::BadRequest(
            "the reply is longer than 2000 bytes".into(),
        ));
    }
    let found = state
        .store
        .set_phishing_triage(&PhishingTriage {
            report_id: id,
            status: status.to_owned(),
            reply,
            updated_at: state.clock.now(),
            updated_by: f.session.actor(),
        })
        .await?;
    if !found {
        return Err(ConsoleError::NotFound("no such report".into()));
    }
    Ok(see_other(&format!("/console/phishing/{id}")))
}

// Webhooks: see `integrations.rs`.

// ---------------------------------------------------------------------------------------
// API tokens

async fn tokens_page(
    state: &SharedState,
    session: &Session,
    created: Option<(String, String)>,
    error: Option<String>,
) -> Page {
    let tokens = state
        .store
        .list_api_tokens()
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id.to_string(),
            name: t.name,
            role: t.role.as_str().to_owned(),
            created: views::time(t.created_at),
            by: t.created_by.unwrap_or_default(),
            revoked: views::opt_time(t.revoked_at),
            active: t.revoked_at.is_none(),
        })
        .collect();
    views::render(&TokensTpl {
        page: PageCtx::new(session, "API tokens", "tokens"),
        tokens,
        created,
        error,
    })
}

pub async fn tokens(State(state): State<SharedState>, session: Session) -> Page {
    tokens_page(&state, &session, None, None).await
}

fn role_of(form: &FormData) -> Result<Role, ConsoleError> {
    Role::parse(form.get("role").unwrap_or_default())
        .ok_or_else(|| ConsoleError::BadRequest("the role must be admin or viewer".into()))
}

pub async fn create_token(State(state): State<SharedState>, f: AdminForm) -> Page {
    let name = f.form.text("name").unwrap_or_default().to_owned();
    if name.is_empty() || name.len() > 256 {
        let e = "A token needs a name of at most 256 bytes.".to_owned();
        return tokens_page(&state, &f.session, None, Some(e)).await;
    }
    let role = role_of(&f.form)?;
    let token = crate::keys::new_secret();
    state
        .store
        .create_api_token(&NewApiToken {
            id: Uuid::now_v7(),
            name: name.clone(),
            role,
            hash: crate::keys::hash_secret(&token),
            created_at: state.clock.now(),
            created_by: f.session.actor(),
        })
        .await?;
    tokens_page(&state, &f.session, Some((name, token)), None).await
}

pub async fn revoke_token(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    f: AdminForm,
) -> Page {
    let id = parse_id(&id)?;
    state
        .store
        .revoke_api_token(id, &by(&f.session, &state))
        .await?;
    Ok(see_other("/console/tokens"))
}

// ---------------------------------------------------------------------------------------
// Admins and roles

async fn admins_page(
    state: &SharedState,
    session: &Session,
    created: Option<(String, String, String)>,
    error: Option<String>,
) -> Page {
    let now = state.clock.now();
    let issuer = state.oidc.as_ref().map(|o| o.issuer().to_owned());
    let mut links: HashMap<Uuid, Vec<OidcLinkRow>> = HashMap::new();
    for l in state.store.list_console_oidc_links().await? {
        links.entry(l.admin_id).or_default().push(OidcLinkRow {
            issuer: l.issuer,
            subject: l.subject,
            linked_at: views::time(l.linked_at),
        });
    }
    let admins = state
        .store
        .list_console_admins()
        .await?
        .into_iter()
        .map(|a| {
            let links = links.remove(&a.id).unwrap_or_default();
            (a, links)
        })
        .map(|(a, links)| AdminRow {
            linked_here: links.iter().any(|l| Some(&l.issuer) == issuer.as_ref()),
            links,
            id: a.id.to_string(),
            me: a.id == session.account.admin_id,
            role: a.role.as_str().to_owned(),
            created: format!("{} by {}", views::time(a.created_at), a.created_by),
            last_login: views::opt_time(a.last_login_at),
            state: match (a.disabled_at, a.locked_until.filter(|t| *t > now)) {
                (Some(t), _) => format!("disabled {}", views::time(t)),
                (None, Some(t)) => format!("locked until {}", views::time(t)),
                (None, None) => "active".to_owned(),
            },
            active: a.disabled_at.is_none(),
            username: a.username,
        })
        .collect();
    views::render(&AdminsTpl {
        page: PageCtx::new(session, "Admins & roles", "admins"),
        admins,
        created,
        error,
        oidc_issuer: issuer,
    })
}

pub async fn admins(State(state): State<SharedState>, session: Session) -> Page {
    admins_page(&state, &session, None, None).await
}

/// Usernames are plain: they appear in the audit log and in authenticator apps.
pub fn check_username(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err("usernames are 1 to 64 letters, digits, `.`, `_`, `-` or `@`".into())
    }
}

/// Creates a console account and returns its TOTP secret (shared by the page and the CLI).
pub async fn create_account(
    store: &dyn crate::Store,
    username: &str,
    password: &str,
    role: Role,
    actor: &str,
    now: chrono::DateTime<Utc>,
) -> Result<String, String> {
    check_username(username)?;
    if password.chars().count() < 12 || password.len() > 1024 {
        return Err("passwords are 12 to 1024 characters".into());
    }
    let password_hash =
        auth::hash_password(password).map_err(|e| format!("could not hash the password: {e}"))?;
    let secret = auth::new_totp_secret();
    let created = store
        .create_console_admin(&NewConsoleAdmin {
            id: Uuid::now_v7(),
            username: username.to_owned(),
            role,
            password_hash,
            totp_secret: secret.clone(),
            created_at: now,
            created_by: actor.to_owned(),
        })
        .await
        .map_err(|e| format!("could not store the account: {e}"))?;
    if !created {
        return Err(format!("an account named {username} exists already"));
    }
    Ok(secret)
}

pub async fn create_admin(State(state): State<SharedState>, f: AdminForm) -> Page {
    let username = f.form.text("username").unwrap_or_default().to_owned();
    let password = f.form.get("password").unwrap_or_default().to_owned();
    let role = role_of(&f.form)?;
    match create_account(
        &*state.store,
        &username,
        &password,
        role,
        &f.session.actor(),
        state.clock.now(),
    )
    .await
    {
        Ok(secret) => {
            let uri = auth::provisioning_uri(&username, &secret);
            admins_page(&state, &f.session, Some((username, secret, uri)), None).await
        }
        Err(e) => admins_page(&state, &f.session, None, Some(e)).await,
    }
}

pub async fn admin_role(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    f: AdminForm,
) -> Page {
    let id = parse_id(&id)?;
    if id == f.session.account.admin_id {
        return Err(ConsoleError::BadRequest(
            "you cannot change your own role".into(),
        ));
    }
    let role = role_of(&f.form)?;
    if !state
        .store
        .set_console_admin_role(id, role, &by(&f.session, &state))
        .await?
    {
        return Err(ConsoleError::NotFound("no such account".into()));
    }
    Ok(see_other("/console/admins"))
}

pub async fn admin_disable(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    f: AdminForm,
) -> Page {
    let id = parse_id(&id)?;
    if id == f.session.account.admin_id {
        return Err(ConsoleError::BadRequest(
            "you cannot disable your own account".into(),
        ));
    }
    if !state
        .store
        .disable_console_admin(id, &by(&f.session, &state))
        .await?
    {
        return Err(ConsoleError::NotFound("no such account".into()));
    }
    Ok(see_other("/console/admins"))
}

/// `POST /console/admins/{id}/oidc/link`: links a subject of the configured provider to the
/// account by hand, for providers that do not vouch for emails (Microsoft Entra).
pub async fn admin_oidc_link(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    f: AdminForm,
) -> Page {
    let id = parse_id(&id)?;
    let Some(oidc) = state.oidc.as_ref() else {
        return Err(ConsoleError::BadRequest(
            "single sign-on is not configured on this server".into(),
        ));
    };
    let value = f.form.text("subject").unwrap_or_default().trim().to_owned();
    // As the ID token check accepts them: 1 to 255 characters (object ids 200); control
    // characters are no provider's and would only confuse the audit log.
    let (subject, max) = match f.form.text("claim").unwrap_or("sub") {
        "oid" => (super::oidc::object_id_subject(&value), 200),
        _ => (value.clone(), 255),
    };
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return admins_page(
            &state,
            &f.session,
            None,
            Some("The subject is 1 to 255 characters: the `sub` claim (for Microsoft Entra, see docs/deploy/oidc.md).".into()),
        )
        .await;
    }
    match state
        .store
        .link_console_oidc(id, oidc.issuer(), &subject, &by(&f.session, &state))
        .await?
    {
        OidcLinkOutcome::Linked => Ok(see_other("/console/admins")),
        OidcLinkOutcome::NoSuchAccount => Err(ConsoleError::NotFound("no such account".into())),
        OidcLinkOutcome::SubjectTaken => {
            admins_page(
                &state,
                &f.session,
                None,
                Some(format!(
                    "The subject {subject} is linked to another account already; unlink it there first."
                )),
            )
            .await
        }
    }
}

/// `POST /console/admins/{id}/oidc/unlink`: removes the account's link to an issuer (any
/// issuer, so that links to a provider no longer configured can be cleaned up).
pub async fn admin_oidc_unlink(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    f: AdminForm,
) -> Page {
    let id = parse_id(&id)?;
    let issuer = f.form.text("issuer").unwrap_or_default().to_owned();
    if issuer.is_empty() || issuer.len() > 2048 {
        return Err(ConsoleError::BadRequest("no issuer given".into()));
    }
    if !state
        .store
        .unlink_console_oidc(id, &issuer, &by(&f.session, &state))
        .await?
    {
        return Err(ConsoleError::NotFound("no such link".into()));
    }
    Ok(see_other("/console/admins"))
}

// ---------------------------------------------------------------------------------------
// Audit log and exports

#[derive(Debug, Default, Deserialize)]
pub struct AuditParams {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    before: Option<i64>,
}

const AUDIT_ACTIONS: &[&str] = &[
    crate::store::action::POLICY_PUT,
    crate::store::action::GROUP_CREATE,
    crate::store::action::ENROLL_SECRET_CREATE,
    crate::store::action::ENROLL_SECRET_EXPIRE,
    crate::store::action::API_TOKEN_CREATE,
    crate::store::console::action::API_TOKEN_REVOKE,
    crate::store::action::DEVICE_REVOKE,
    crate::store::action::IDENTITY_IMPORT,
    crate::store::console::action::ADMIN_CREATE,
    crate::store::console::action::ADMIN_ROLE,
    crate::store::console::action::ADMIN_DISABLE,
    crate::store::console::action::PHISHING_TRIAGE,
    crate::store::console::action::OIDC_LINK,
    crate::store::console::action::OIDC_UNLINK,
    crate::store::console::SIGN_IN_ACTION,
    crate::store::console::SIGN_IN_FAILED_ACTION,
    crate::store::console::LOCKOUT_ACTION,
    crate::store::console::SIGN_OUT_ACTION,
];

async fn audit_entries(
    state: &SharedState,
    params: &AuditParams,
    limit: u32,
) -> Result<Vec<crate::store::AuditEntry>, ConsoleError> {
    if params.action.len() > 64 || params.actor.len() > 256 {
        return Err(ConsoleError::BadRequest("the filter is too long".into()));
    }
    let entries = state
        .store
        .list_audit(&AuditQuery {
            before_id: params.before,
            action: Some(params.action.clone()).filter(|a| !a.is_empty()),
            limit,
        })
        .await?;
    let actor = params.actor.to_lowercase();
    Ok(entries
        .into_iter()
        .filter(|e| actor.is_empty() || e.actor.to_lowercase().contains(&actor))
        .collect())
}

fn audit_query(params: &AuditParams) -> String {
    let mut q = Vec::new();
    if !params.action.is_empty() {
        q.push(format!("action={}", super::percent_encode(&params.action)));
    }
    if !params.actor.is_empty() {
        q.push(format!("actor={}", super::percent_encode(&params.actor)));
    }
    q.join("&")
}

pub async fn audit(
    State(state): State<SharedState>,
    session: Session,
    Query(params): Query<AuditParams>,
) -> Page {
    const PAGE: u32 = 100;
    let entries = audit_entries(&state, &params, PAGE).await?;
    let base = audit_query(&params);
    let next = (entries.len() == PAGE as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten()
        .map(|id| {
            if base.is_empty() {
                format!("?before={id}")
            } else {
                format!("?{base}&before={id}")
            }
        });
    let show = |v: &Option<Value>| v.as_ref().map(pretty).unwrap_or_default();
    let t = AuditTpl {
        page: PageCtx::new(&session, "Audit log", "audit"),
        entries: entries
            .iter()
            .map(|e| AuditRow {
                at: views::time(e.at),
                actor: e.actor.clone(),
                action: e.action.clone(),
                target: e.target.clone(),
                before: show(&e.before),
                after: show(&e.after),
            })
            .collect(),
        actions: AUDIT_ACTIONS
            .iter()
            .map(|a| (*a, *a == params.action))
            .collect(),
        csv_query: if base.is_empty() {
            String::new()
        } else {
            format!("?{base}")
        },
        action: params.action,
        actor: params.actor,
        next,
    };
    views::render(&t)
}

fn csv_response(name: &str, body: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut resp = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
    if let Ok(v) = HeaderValue::try_from(disposition) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

pub async fn audit_csv(
    State(state): State<SharedState>,
    _session: Session,
    Query(params): Query<AuditParams>,
) -> Page {
    let entries = audit_entries(&state, &params, crate::api::admin::MAX_PAGE).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let write = |out: &mut csv::Writer<Vec<u8>>| -> Result<(), csv::Error> {
        out.write_record(["id", "at", "actor", "action", "target", "before", "after"])?;
        for e in &entries {
            let json = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
            let row = [
                e.id.to_string(),
                e.at.to_rfc3339(),
                e.actor.clone(),
                e.action.clone(),
                e.target.clone(),
                json(&e.before),
                json(&e.after),
            ];
            out.write_record(row.iter().map(|c| crate::export::safe_cell(c).into_owned()))?;
        }
        Ok(())
    };
    write(&mut out).map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    let body = out
        .into_inner()
        .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    Ok(csv_response("audit.csv", body))
}

pub async fn compliance_csv(State(state): State<SharedState>, _session: Session) -> Page {
    let devices = crate::export::all_devices(&*state.store).await?;
    let body = crate::export::compliance_csv(&devices)
        .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    Ok(csv_response("compliance.csv", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_listed_not_interpreted() {
        let eml = "From: a@example\r\nSubject: Hi\r\nX-Other: no\r\n\r\n<a href=\"https://evil.example/x\">x</a> \
                   see http://b.example/y)\r\nContent-Disposition: attachment; filename=\"a.exe\"\r\n";
        let (headers, urls, attachments) = inspect_message(eml);
        assert_eq!(headers.len(), 2);
        assert_eq!(urls, ["http://b.example/y", "https://evil.example/x"]);
        assert_eq!(attachments, ["a.exe"]);
    }
}
