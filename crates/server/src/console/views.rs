//! The pages' templates (askama, HTML-escaped) and the plain view structs they read. Values
//! are turned into display strings here so templates stay free of logic.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::auth::Session;
use super::policy_form::Section;
use super::svg::Bar;
use super::ConsoleError;

/// What the layout needs on every signed-in page.
#[derive(Debug, Clone)]
pub struct PageCtx {
    pub title: String,
    /// Which navigation entry is current.
    pub nav: &'static str,
    pub username: String,
    pub role: &'static str,
    pub csrf: String,
    pub admin: bool,
}

impl PageCtx {
    pub fn new(session: &Session, title: impl Into<String>, nav: &'static str) -> PageCtx {
        PageCtx {
            title: title.into(),
            nav,
            username: session.account.username.clone(),
            role: session.account.role.as_str(),
            csrf: session.csrf(),
            admin: session.is_admin(),
        }
    }

    /// The class of a navigation entry.
    pub fn nav_class(&self, key: &str) -> &'static str {
        if self.nav == key {
            "nav-item current"
        } else {
            "nav-item"
        }
    }
}

/// Renders a template into a response.
pub fn render<T: Template>(t: &T) -> Result<Response, ConsoleError> {
    Ok(Html(t.render()?).into_response())
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "—".to_owned())
}

/// "3 min ago", "2 days ago".
pub fn ago(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> String {
    let Some(t) = t else {
        return "never".to_owned();
    };
    let secs = (now - t).num_seconds();
    match secs {
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorTpl {
    pub status: String,
    pub message: String,
}

pub fn error_page(status: StatusCode, message: &str) -> Html<String> {
    let t = ErrorTpl {
        status: status.to_string(),
        message: message.to_owned(),
    };
    Html(
        t.render()
            .unwrap_or_else(|_| "The console could not render this page.".to_owned()),
    )
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginTpl {
    pub error: Option<String>,
    pub login_token: String,
    pub username: String,
    /// "Sign in with <name>" when OpenID Connect sign-in is configured.
    pub oidc: Option<String>,
}

pub struct CheckRow {
    pub id: String,
    pub title: String,
    pub pass: i64,
    pub due: i64,
    pub overdue: i64,
    pub unknown: i64,
    pub pct: String,
    /// (x, width, class) of the distribution bar, in a 100-wide box.
    pub bar: Vec<(String, String, &'static str)>,
    pub spark: String,
    pub spark_dot: Option<(String, String)>,
}

pub struct OverdueRow {
    pub device_id: String,
    pub hostname: String,
    pub user: String,
    pub group: String,
    pub check: String,
    pub days: i64,
}

pub struct DeviceRow {
    pub id: String,
    pub hostname: String,
    pub user: String,
    pub group: String,
    pub os: String,
    pub last_report: String,
    pub worst: &'static str,
    pub problems: String,
}

pub struct Filters {
    pub group: String,
    pub os: String,
    pub check: String,
    pub status: String,
    pub q: String,
}

#[derive(Template)]
#[template(path = "console/fleet.html")]
pub struct FleetTpl {
    pub page: PageCtx,
    pub checks: Vec<CheckRow>,
    pub bars: Vec<Bar>,
    pub trend_days: i64,
    /// The first and last day of the chart.
    pub trend_from: String,
    pub trend_to: String,
    pub overall_pct: String,
    pub device_count: usize,
    pub overdue_devices: usize,
    pub overdue: Vec<OverdueRow>,
    pub devices: Vec<DeviceRow>,
    pub matching: usize,
    pub filters: Filters,
    pub groups: Vec<(String, bool)>,
    pub oses: Vec<(String, bool)>,
    pub check_options: Vec<(String, String, bool)>,
    pub status_options: Vec<(String, bool)>,
    pub export_query: String,
}

pub struct ResultView {
    pub title: String,
    pub id: String,
    pub status: String,
    pub category: &'static str,
    pub summary: String,
    pub reason: String,
    pub details: String,
    pub evidence: Vec<(String, String)>,
    pub observed: String,
    pub deadline: String,
}

pub struct HistoryRow {
    pub title: String,
    /// (status, tooltip) per report, oldest first.
    pub cells: Vec<(String, String)>,
}

pub struct EventRow {
    pub at: String,
    pub kind: String,
    pub check: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "console/device.html")]
pub struct DeviceTpl {
    pub page: PageCtx,
    pub id: String,
    pub hostname: String,
    pub facts: Vec<(&'static str, String)>,
    pub revoked: bool,
    pub policy_line: String,
    pub policy_in_force: bool,
    pub results: Vec<ResultView>,
    pub history: Vec<HistoryRow>,
    pub history_times: Vec<String>,
    pub events: Vec<EventRow>,
    pub raw: String,
}

pub struct GroupRow {
    pub name: String,
    pub devices: i64,
    pub version: String,
    pub follows_default: bool,
}

#[derive(Template)]
#[template(path = "console/policies.html")]
pub struct PoliciesTpl {
    pub page: PageCtx,
    pub groups: Vec<GroupRow>,
}

pub struct VersionRow {
    pub version: i64,
    pub created: String,
    pub by: String,
    pub current: bool,
}

pub struct ChangeRow {
    pub op: String,
    pub pointer: String,
    pub before: String,
    pub after: String,
}

#[derive(Template)]
#[template(path = "console/policy.html")]
pub struct PolicyTpl {
    pub page: PageCtx,
    pub group: String,
    pub source: String,
    pub sections: Vec<Section>,
    pub raw: String,
    pub versions: Vec<VersionRow>,
    pub error: Option<String>,
    pub notice: Option<String>,
    /// A past version being looked at: (version, its document, its diff to the current).
    pub viewing: Option<(i64, String, Vec<ChangeRow>)>,
}

#[derive(Template)]
#[template(path = "console/preview.html")]
pub struct PreviewTpl {
    pub page: PageCtx,
    pub group: String,
    pub changes: Vec<ChangeRow>,
    pub doc: String,
    pub devices: usize,
    pub changing: usize,
    /// (category, before, after) totals.
    pub moves: Vec<(String, i64, i64)>,
    /// Device checks judged again from their evidence under the new thresholds.
    pub reevaluated: usize,
    /// Device checks whose changed threshold could not be judged: (hostname, check, why).
    pub not_evaluated: Vec<(String, &'static str, &'static str)>,
}

pub struct SecretRow {
    pub id: String,
    pub group: String,
    pub created: String,
    pub by: String,
    pub expires: String,
    pub uses: String,
    pub usable: bool,
}

pub struct CreatedSecret {
    pub secret: String,
    pub group: String,
    pub commands: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "console/enrollment.html")]
pub struct EnrollmentTpl {
    pub page: PageCtx,
    pub secrets: Vec<SecretRow>,
    pub groups: Vec<String>,
    pub created: Option<CreatedSecret>,
    pub error: Option<String>,
}

pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created: String,
    pub by: String,
    pub revoked: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
pub struct TokensTpl {
    pub page: PageCtx,
    pub tokens: Vec<TokenRow>,
    pub created: Option<(String, String)>,
    pub error: Option<String>,
}

pub struct AdminRow {
    pub id: String,
    pub username: String,
    pub role: String,
    pub created: String,
    pub last_login: String,
    pub state: String,
    pub active: bool,
    pub me: bool,
    /// Identity-provider accounts that sign in as this one.
    pub links: Vec<OidcLinkRow>,
    /// Whether one of them is at the configured issuer (no "Link identity" form then).
    pub linked_here: bool,
}

pub struct OidcLinkRow {
    pub issuer: String,
    pub subject: String,
    pub linked_at: String,
}

#[derive(Template)]
#[template(path = "console/admins.html")]
pub struct AdminsTpl {
    pub page: PageCtx,
    pub admins: Vec<AdminRow>,
    /// (username, TOTP secret, provisioning URI), shown once.
    pub created: Option<(String, String, String)>,
    pub error: Option<String>,
    /// The configured OpenID Connect issuer, when single sign-on is on.
    pub oidc_issuer: Option<String>,
}

pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: String,
    pub after: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditTpl {
    pub page: PageCtx,
    pub entries: Vec<AuditRow>,
    pub action: String,
    pub actor: String,
    pub actions: Vec<(&'static str, bool)>,
    pub next: Option<String>,
    pub csv_query: String,
}

pub struct PhishingRow {
    pub id: String,
    pub tracking: String,
    pub received: String,
    pub reporter: String,
    pub hostname: String,
    pub subject: String,
    pub kind: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "console/phishing.html")]
pub struct PhishingTpl {
    pub page: PageCtx,
    pub reports: Vec<PhishingRow>,
}

#[derive(Template)]
#[template(path = "console/phishing_report.html")]
pub struct PhishingReportTpl {
    pub page: PageCtx,
    pub id: String,
    pub facts: Vec<(&'static str, String)>,
    pub headers: Vec<(String, String)>,
    pub urls: Vec<String>,
    pub attachments: Vec<String>,
    pub raw: String,
    pub truncated: bool,
    pub statuses: Vec<(&'static str, bool)>,
    pub reply: String,
    pub triaged: String,
}
