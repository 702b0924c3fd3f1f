//! The console's identity-source and webhook pages: list, create, edit and delete the ones
//! stored in the database, test a source's connection or a hook's delivery, and show the
//! ones from the server's files read-only.
//!
//! Secrets (API tokens, client secrets, Duo's secret key, Google's access token, a hook's
//! signing secret and its URL, whose path often is a credential itself) are write-only:
//! a form accepts them and never shows them back; a blank field keeps the stored value.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::auth::Session;
use super::forms::{AdminForm, FormData};
use super::views::{self, PageCtx};
use super::ConsoleError;
use crate::api::SharedState;
use crate::identity::sources::{self, Origin, SourceConfig};
use crate::store::integrations::{StoredSourceConfig, StoredWebhook};
use crate::store::ChangeBy;
use crate::webhooks::{self, EventKind, Format, WebhookConfig};

type Page = Result<Response, ConsoleError>;

fn by(session: &Session, state: &SharedState) -> ChangeBy {
    ChangeBy {
        actor: session.actor(),
        at: state.clock.now(),
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A page shown again with the form's error: 422, so that scripts see the refusal too.
fn refused(page: Response) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

// ---------------------------------------------------------------------------------------
// Identity sources

/// One field of a source kind's form.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// The config struct's field (`identity/sources.rs`).
    pub name: &'static str,
    pub label: &'static str,
    pub secret: bool,
    pub required: bool,
    /// What a new source starts with (the config's serde default).
    pub default: &'static str,
    pub help: &'static str,
}

const fn field(
    name: &'static str,
    label: &'static str,
    secret: bool,
    required: bool,
    default: &'static str,
    help: &'static str,
) -> FieldSpec {
    FieldSpec {
        name,
        label,
        secret,
        required,
        default,
        help,
    }
}

/// The kinds a source can be, with their display names.
pub const KINDS: &[(&str, &str)] = &[
    ("okta", "Okta"),
    ("entra", "Microsoft Entra ID"),
    ("google", "Google Workspace"),
    ("duo", "Duo"),
];

/// The form of each kind: the fields of its config struct.
pub fn fields(kind: &str) -> &'static [FieldSpec] {
    const OKTA: &[FieldSpec] = &[
        field(
            "base_url",
            "Okta URL",
            false,
            true,
            "",
            "Your organisation's Okta address, e.g. https://acme.okta.com.",
        ),
        field(
            "api_token",
            "API token",
            true,
            true,
            "",
            "An API token of a read-only administrator (sent as SSWS).",
        ),
        field(
            "search",
            "User search",
            false,
            true,
            "status eq \"ACTIVE\"",
            "Okta's search expression for the users to read.",
        ),
    ];
    const ENTRA: &[FieldSpec] = &[
        field(
            "tenant_id",
            "Tenant id",
            false,
            true,
            "",
            "The directory (tenant) id of your organisation.",
        ),
        field(
            "client_id",
            "Client id",
            false,
            true,
            "",
            "An app registration with User.Read.All and AuditLog.Read.All application permissions.",
        ),
        field(
            "client_secret",
            "Client secret",
            true,
            true,
            "",
            "The app registration's client secret.",
        ),
        field(
            "graph_url",
            "Graph URL",
            false,
            true,
            "https://graph.microsoft.com",
            "Microsoft Graph's address.",
        ),
        field(
            "token_url",
            "Token URL",
            false,
            false,
            "",
            "Leave blank for https://login.microsoftonline.com/TENANT/oauth2/v2.0/token.",
        ),
    ];
    const GOOGLE: &[FieldSpec] = &[
        field(
            "access_token",
            "Access token",
            true,
            true,
            "",
            "An OAuth access token with the admin.directory.user.readonly scope.",
        ),
        field(
            "base_url",
            "Directory URL",
            false,
            true,
            "https://admin.googleapis.com",
            "The Admin SDK's address.",
        ),
        field(
            "customer",
            "Customer",
            false,
            true,
            "my_customer",
            "The customer id, or my_customer for your own.",
        ),
    ];
    const DUO: &[FieldSpec] = &[
        field(
            "api_host",
            "API host",
            false,
            true,
            "",
            "The Admin API host name, e.g. api-XXXXXXXX.duosecurity.com.",
        ),
        field(
            "integration_key",
            "Integration key",
            false,
            true,
            "",
            "The Admin API application's integration key.",
        ),
        field(
            "secret_key",
            "Secret key",
            true,
            true,
            "",
            "The Admin API application's secret key.",
        ),
        field(
            "scheme",
            "Scheme",
            false,
            true,
            "https",
            "https (http only for a server on this machine).",
        ),
    ];
    match kind {
        "okta" => OKTA,
        "entra" => ENTRA,
        "google" => GOOGLE,
        "duo" => DUO,
        _ => &[],
    }
}

fn kind_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, l)| *l)
        .unwrap_or("Unknown")
}

fn known_kind(kind: &str) -> Result<&'static str, ConsoleError> {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(k, _)| *k)
        .ok_or_else(|| ConsoleError::NotFound("no such kind of identity source".into()))
}

pub struct SourceRow {
    pub name: String,
    pub kind: String,
    pub from_file: bool,
    pub interval: String,
    pub last_run: String,
    pub last_success: String,
    pub error: String,
    pub users: String,
    pub healthy: bool,
    pub never_run: bool,
    /// The edit page's path (the name is restricted to URL-safe characters).
    pub edit: String,
}

pub struct IdentityRow {
    pub user: String,
    pub source: String,
    pub mfa: String,
    pub password_changed: String,
    pub as_of: String,
}

#[derive(Template)]
#[template(path = "console/identity.html")]
pub struct IdentityTpl {
    pub page: PageCtx,
    pub sources: Vec<SourceRow>,
    pub identities: Vec<IdentityRow>,
    pub kinds: Vec<(&'static str, &'static str)>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub struct FieldView {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    pub secret: bool,
    /// A secret is stored already: a blank field keeps it.
    pub set: bool,
    pub required: bool,
    pub help: &'static str,
}

#[derive(Template)]
#[template(path = "console/identity_source.html")]
pub struct SourceFormTpl {
    pub page: PageCtx,
    pub kind: &'static str,
    pub kind_label: &'static str,
    /// `None` for a new source.
    pub existing: Option<String>,
    pub name: String,
    pub interval: String,
    pub fields: Vec<FieldView>,
    pub action: String,
    pub error: Option<String>,
    pub updated: String,
}

async fn identity_page(
    state: &SharedState,
    session: &Session,
    notice: Option<String>,
    error: Option<String>,
) -> Page {
    let health = state.store.list_source_health().await?;
    let (configured, unreadable) =
        sources::sources_and_faults(&state.identity_sources, &*state.store, &state.secrets).await?;
    let now = state.clock.now();
    let row = |name: String,
               kind: String,
               origin: Option<Origin>,
               interval: String,
               h: Option<&crate::store::SourceHealth>| SourceRow {
        edit: format!("/console/identity/sources/{name}"),
        name,
        kind,
        from_file: origin == Some(Origin::File),
        interval,
        last_run: views::ago(now, h.and_then(|h| h.last_run_at)),
        last_success: views::opt_time(h.and_then(|h| h.last_success_at)),
        error: h.and_then(|h| h.last_error.clone()).unwrap_or_default(),
        users: h
            .and_then(|h| h.users)
            .map(|u| u.to_string())
            .unwrap_or_default(),
        healthy: h.is_some_and(|h| h.last_error.is_none() && h.last_run_at.is_some()),
        never_run: h.and_then(|h| h.last_run_at).is_none(),
    };
    let mut rows: Vec<SourceRow> = configured
        .iter()
        .map(|(c, origin)| {
            row(
                c.name.clone(),
                c.settings.kind().to_owned(),
                Some(*origin),
                format!("{} min", c.interval_minutes),
                health.iter().find(|h| h.name == c.name),
            )
        })
        .collect();
    // A source whose credentials do not open with this server's key says so, whatever
    // another replica's last poll recorded.
    for u in &unreadable {
        let h = health.iter().find(|h| h.name == u.name);
        rows.push(SourceRow {
            error: u.error.clone(),
            healthy: false,
            never_run: false,
            ..row(
                u.name.clone(),
                u.kind.clone(),
                Some(Origin::Console),
                format!("{} min", u.interval_minutes),
                h,
            )
        });
    }
    // Sources polled before but configured no more (a file entry removed) keep their
    // last health on the page, without actions.
    for h in &health {
        if !configured.iter().any(|(c, _)| c.name == h.name)
            && !unreadable.iter().any(|u| u.name == h.name)
            && h.last_run_at.is_some()
        {
            rows.push(row(
                h.name.clone(),
                h.kind.clone(),
                None,
                String::new(),
                Some(h),
            ));
        }
    }
    let identities = state
        .store
        .list_identities(None, 100, 0)
        .await?
        .into_iter()
        .map(|i| IdentityRow {
            user: i.email.clone().or(i.login.clone()).unwrap_or_default(),
            source: i.source.clone(),
            mfa: match i.mfa_enrolled {
                Some(true) => "enrolled".into(),
                Some(false) => "not enrolled".into(),
                None => "—".into(),
            },
            password_changed: views::opt_time(i.password_changed_at),
            as_of: views::time(i.as_of),
        })
        .collect();
    views::render(&IdentityTpl {
        page: PageCtx::new(session, "Identity sources", "identity"),
        sources: rows,
        identities,
        kinds: KINDS.to_vec(),
        notice,
        error,
    })
}

pub async fn identity(State(state): State<SharedState>, session: Session) -> Page {
    identity_page(&state, &session, None, None).await
}

/// "Test connection": polls the source once, now, and shows what it answered.
pub async fn identity_poll(State(state): State<SharedState>, f: AdminForm) -> Page {
    let name = f.form.get("name").unwrap_or_default();
    let (all, unreadable) =
        sources::sources_and_faults(&state.identity_sources, &*state.store, &state.secrets).await?;
    if let Some(u) = unreadable.iter().find(|u| u.name == name) {
        let health = sources::record_unreadable(u, &*state.store, &*state.clock).await;
        let error = format!(
            "{} failed: {}",
            u.name,
            health.last_error.unwrap_or_default()
        );
        return identity_page(&state, &f.session, None, Some(error)).await;
    }
    let Some((source, _)) = all.iter().find(|(s, _)| s.name == name) else {
        return Err(ConsoleError::NotFound("no such identity source".into()));
    };
    let http = sources::http_client();
    let health = sources::poll_once(source, &*state.store, &*state.clock, &http).await;
    let (notice, error) = match health.last_error {
        None => (
            Some(format!(
                "{} answered: {} users synced.",
                health.name,
                health.users.unwrap_or(0)
            )),
            None,
        ),
        Some(e) => (None, Some(format!("{} failed: {e}", health.name))),
    };
    identity_page(&state, &f.session, notice, error).await
}

pub async fn identity_import(State(state): State<SharedState>, f: AdminForm) -> Page {
    let csv = f.form.get("csv").unwrap_or_default();
    let now = state.clock.now();
    match crate::identity::parse_csv(csv.as_bytes(), now) {
        Ok(facts) => {
            let n = state
                .store
                .upsert_identities(&facts, Some(&by(&f.session, &state)))
                .await?;
            identity_page(
                &state,
                &f.session,
                Some(format!("Imported {n} users.")),
                None,
            )
            .await
        }
        Err(e) => identity_page(&state, &f.session, None, Some(e.to_string())).await,
    }
}

/// The form's fields for `kind`: the submitted values when a form is shown again, else the
/// stored configuration's, else the defaults. Secrets are never filled in.
fn field_views(kind: &str, stored: Option<&Value>, submitted: Option<&FormData>) -> Vec<FieldView> {
    fields(kind)
        .iter()
        .map(|f| {
            let stored_value = stored.and_then(|s| s.get(f.name));
            let value = if f.secret {
                String::new()
            } else if let Some(form) = submitted {
                form.get(f.name).unwrap_or_default().to_owned()
            } else if let Some(v) = stored_value {
                v.as_str().unwrap_or_default().to_owned()
            } else {
                f.default.to_owned()
            };
            FieldView {
                name: f.name,
                label: f.label,
                value,
                secret: f.secret,
                set: f.secret && stored_value.is_some_and(|v| !v.is_null()),
                required: f.required,
                help: f.help,
            }
        })
        .collect()
}

fn source_form(
    session: &Session,
    kind: &'static str,
    stored: Option<&StoredSourceConfig>,
    submitted: Option<&FormData>,
    error: Option<String>,
) -> Page {
    let (name, interval) = match (submitted, stored) {
        (Some(f), _) => (
            stored
                .map(|s| s.name.clone())
                .unwrap_or_else(|| f.get("name").unwrap_or_default().to_owned()),
            f.get("interval_minutes").unwrap_or_default().to_owned(),
        ),
        (None, Some(s)) => (
            s.name.clone(),
            s.config
                .get("interval_minutes")
                .map(|v| v.to_string())
                .unwrap_or_default(),
        ),
        (None, None) => (String::new(), "60".to_owned()),
    };
    let title = match stored {
        Some(s) => format!("Identity source “{}”", s.name),
        None => format!("New {} source", kind_label(kind)),
    };
    views::render(&SourceFormTpl {
        page: PageCtx::new(session, title, "identity"),
        kind,
        kind_label: kind_label(kind),
        existing: stored.map(|s| s.name.clone()),
        name,
        interval,
        fields: field_views(kind, stored.map(|s| &s.config), submitted),
        action: match stored {
            Some(s) => format!("/console/identity/sources/{}", s.name),
            None => "/console/identity/sources".to_owned(),
        },
        error,
        updated: stored
            .map(|s| format!("{} by {}", views::time(s.updated_at), s.updated_by))
            .unwrap_or_default(),
    })
}

/// Builds and checks a source from its form; blank secret fields keep `stored`'s.
pub fn source_from_form(
    kind: &str,
    name: &str,
    form: &FormData,
    stored: Option<&Value>,
) -> Result<SourceConfig, String> {
    let mut object = Map::new();
    object.insert("name".into(), Value::String(name.trim().to_owned()));
    object.insert("kind".into(), Value::String(kind.to_owned()));
    let interval: u32 = form
        .text("interval_minutes")
        .ok_or("the interval is empty")?
        .parse()
        .map_err(|_| "the interval must be a whole number of minutes".to_owned())?;
    object.insert("interval_minutes".into(), Value::from(interval));
    for f in fields(kind) {
        match form.text(f.name) {
            Some(v) => {
                object.insert(f.name.into(), Value::String(v.to_owned()));
            }
            None => {
                let kept = stored
                    .and_then(|s| s.get(f.name))
                    .filter(|v| f.secret && !v.is_null());
                match kept {
                    Some(v) => {
                        object.insert(f.name.into(), v.clone());
                    }
                    None if f.required => return Err(format!("{} is required", f.label)),
                    None => {}
                }
            }
        }
    }
    let config: SourceConfig =
        serde_json::from_value(Value::Object(object)).map_err(|e| e.to_string())?;
    sources::validate(&config)?;
    Ok(config)
}

#[derive(Debug, Deserialize)]
pub struct NewSourceQuery {
    #[serde(default)]
    kind: String,
}

pub async fn identity_new(session: Session, Query(q): Query<NewSourceQuery>) -> Page {
    let kind = known_kind(&q.kind)?;
    source_form(&session, kind, None, None, None)
}

pub async fn identity_create(State(state): State<SharedState>, f: AdminForm) -> Page {
    let kind = known_kind(f.form.get("kind").unwrap_or_default())?;
    let name = f.form.get("name").unwrap_or_default().trim().to_owned();
    let again =
        |e: String| source_form(&f.session, kind, None, Some(&f.form), Some(e)).map(refused);
    let config = match source_from_form(kind, &name, &f.form, None) {
        Ok(c) => c,
        Err(e) => return again(e),
    };
    if state.identity_sources.iter().any(|s| s.name == name) {
        return again(format!(
            "a source named “{name}” is configured in the server's file already"
        ));
    }
    let record = StoredSourceConfig {
        name: name.clone(),
        kind: kind.to_owned(),
        config: serde_json::to_value(&config)
            .map_err(|e| ConsoleError::BadRequest(e.to_string()))?,
        updated_at: state.clock.now(),
        updated_by: f.session.actor(),
    };
    let record = state.secrets.seal_source(record).map_err(sealing)?;
    if !state
        .store
        .create_source_config(&record, &by(&f.session, &state))
        .await?
    {
        return again(format!("a source named “{name}” exists already"));
    }
    Ok(see_other("/console/identity"))
}

/// A stored source with its secrets opened. When they do not open with this server's key,
/// they are left out, with the reason: the form then asks for every secret again.
async fn stored_source(
    state: &SharedState,
    name: &str,
) -> Result<(StoredSourceConfig, Option<String>), ConsoleError> {
    let stored = stored_source_sealed(state, name).await?;
    match state.secrets.open_source(&stored) {
        Ok(opened) => Ok((opened, None)),
        Err(e) => {
            let mut config = stored.config.clone();
            if let Value::Object(map) = &mut config {
                for f in fields(&stored.kind).iter().filter(|f| f.secret) {
                    map.remove(f.name);
                }
            }
            let reason = format!("{e}; enter the secrets again to replace them");
            Ok((StoredSourceConfig { config, ..stored }, Some(reason)))
        }
    }
}

async fn stored_source_sealed(
    state: &SharedState,
    name: &str,
) -> Result<StoredSourceConfig, ConsoleError> {
    state
        .store
        .list_source_configs()
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            ConsoleError::NotFound(
                "no such identity source (sources from the server's file are edited there)".into(),
            )
        })
}

pub async fn identity_edit(
    State(state): State<SharedState>,
    session: Session,
    Path(name): Path<String>,
) -> Page {
    let (stored, unreadable) = stored_source(&state, &name).await?;
    let kind = known_kind(&stored.kind)?;
    source_form(&session, kind, Some(&stored), None, unreadable)
}

pub async fn identity_update(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    f: AdminForm,
) -> Page {
    let (stored, _) = stored_source(&state, &name).await?;
    let kind = known_kind(&stored.kind)?;
    let config = match source_from_form(kind, &stored.name, &f.form, Some(&stored.config)) {
        Ok(c) => c,
        Err(e) => {
            return source_form(&f.session, kind, Some(&stored), Some(&f.form), Some(e))
                .map(refused)
        }
    };
    let record = StoredSourceConfig {
        config: serde_json::to_value(&config)
            .map_err(|e| ConsoleError::BadRequest(e.to_string()))?,
        updated_at: state.clock.now(),
        updated_by: f.session.actor(),
        ..stored
    };
    let record = state.secrets.seal_source(record).map_err(sealing)?;
    if !state
        .store
        .update_source_config(&record, &by(&f.session, &state))
        .await?
    {
        return Err(ConsoleError::NotFound("no such identity source".into()));
    }
    Ok(see_other("/console/identity"))
}

pub async fn identity_delete(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    f: AdminForm,
) -> Page {
    if !state
        .store
        .delete_source_config(&name, &by(&f.session, &state))
        .await?
    {
        return Err(ConsoleError::NotFound("no such identity source".into()));
    }
    identity_page(
        &state,
        &f.session,
        Some(format!(
            "Deleted the source “{name}”; the users it synced stay until replaced."
        )),
        None,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Webhooks

/// `https://hooks.example.com/…`: where a hook points without what may authenticate it.
pub fn webhook_target(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Credentials in the authority (`user:pass@host`) are left out too.
    let host = host.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/…")
}

fn format_label(format: Format) -> &'static str {
    match format {
        Format::Generic => "generic JSON",
        Format::Slack => "Slack message",
    }
}

fn events_label(events: &[EventKind]) -> String {
    if events.is_empty() {
        "all events".to_owned()
    } else {
        events
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub struct WebhookRow {
    /// `None` for a hook from the server's file.
    pub id: Option<String>,
    pub name: String,
    /// Scheme and host only: a Slack-style URL's path is itself a secret.
    pub target: String,
    pub format: &'static str,
    pub events: String,
    pub updated: String,
}

/// The add/edit form's state.
pub struct WebhookFormView {
    pub name: String,
    /// Shown only when a form comes back with an error; a stored URL is never shown.
    pub url: String,
    pub url_set: bool,
    pub target: String,
    pub slack: bool,
    /// (value, label, checked)
    pub events: Vec<(&'static str, &'static str, bool)>,
    pub secret_set: bool,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
pub struct WebhooksTpl {
    pub page: PageCtx,
    pub hooks: Vec<WebhookRow>,
    pub form: WebhookFormView,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/webhook.html")]
pub struct WebhookEditTpl {
    pub page: PageCtx,
    pub id: String,
    pub form: WebhookFormView,
    pub error: Option<String>,
    pub updated: String,
}

fn event_label(kind: EventKind) -> &'static str {
    match kind {
        EventKind::PhishingReported => "Phishing report received",
        EventKind::DeviceOverdue => "Device became overdue",
        EventKind::DeviceFixed => "Device fixed",
    }
}

fn form_view(
    name: &str,
    stored: Option<&WebhookConfig>,
    submitted: Option<&FormData>,
) -> WebhookFormView {
    let events: Vec<EventKind> = match (submitted, stored) {
        (Some(f), _) => submitted_events(f),
        (None, Some(h)) => h.events.clone(),
        (None, None) => Vec::new(),
    };
    let slack = match (submitted, stored) {
        (Some(f), _) => f.get("format") == Some("slack"),
        (None, Some(h)) => h.format == Format::Slack,
        (None, None) => false,
    };
    WebhookFormView {
        name: submitted
            .and_then(|f| f.get("name"))
            .unwrap_or(name)
            .to_owned(),
        url: submitted
            .and_then(|f| f.get("url"))
            .unwrap_or_default()
            .to_owned(),
        url_set: stored.is_some(),
        target: stored.map(|h| webhook_target(&h.url)).unwrap_or_default(),
        slack,
        events: EventKind::ALL
            .into_iter()
            .map(|k| (k.as_str(), event_label(k), events.contains(&k)))
            .collect(),
        secret_set: stored.is_some(),
    }
}

fn submitted_events(form: &FormData) -> Vec<EventKind> {
    form.0
        .iter()
        .filter(|(k, _)| k == "events")
        .filter_map(|(_, v)| EventKind::parse(v))
        .collect()
}

/// Builds and checks a hook from its form; a blank URL or secret keeps `stored`'s.
pub fn webhook_from_form(
    form: &FormData,
    stored: Option<&WebhookConfig>,
) -> Result<WebhookConfig, String> {
    for (k, v) in &form.0 {
        if k == "events" && EventKind::parse(v).is_none() {
            return Err(format!("unknown event “{v}”"));
        }
    }
    let format = match form.get("format").unwrap_or("generic") {
        "generic" => Format::Generic,
        "slack" => Format::Slack,
        other => return Err(format!("unknown format “{other}”")),
    };
    let url = match (form.text("url"), stored) {
        (Some(u), _) => u.to_owned(),
        (None, Some(h)) => h.url.clone(),
        (None, None) => return Err("the URL is required".into()),
    };
    let secret = match (form.get("secret").filter(|s| !s.is_empty()), stored) {
        (Some(s), _) => s.to_owned(),
        (None, Some(h)) => h.secret.0.clone(),
        (None, None) => return Err("the signing secret is required".into()),
    };
    let hook = WebhookConfig {
        url,
        format,
        secret: sources::Secret(secret),
        events: submitted_events(form),
    };
    webhooks::validate(&hook)?;
    Ok(hook)
}

fn check_hook_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > 64 {
        return Err("the name is longer than 64 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("the name holds control characters".into());
    }
    Ok(())
}

/// A stored hook, its URL and secret opened.
fn parse_hook(state: &SharedState, stored: &StoredWebhook) -> Result<WebhookConfig, ConsoleError> {
    let opened = state
        .secrets
        .open_webhook(stored)
        .map_err(|e| ConsoleError::BadRequest(format!("webhook “{}”: {e}", stored.name)))?;
    serde_json::from_value(opened.config)
        .map_err(|e| ConsoleError::Store(crate::store::StoreError::Corrupt(e.to_string())))
}

fn sealing(e: crate::secrets::SecretsError) -> ConsoleError {
    ConsoleError::Store(crate::store::StoreError::Corrupt(e.to_string()))
}

async fn webhooks_page(
    state: &SharedState,
    session: &Session,
    submitted: Option<&FormData>,
    notice: Option<String>,
    error: Option<String>,
) -> Page {
    let mut hooks: Vec<WebhookRow> = state
        .webhook_configs
        .iter()
        .map(|h| WebhookRow {
            id: None,
            name: "from file (read-only)".to_owned(),
            target: webhook_target(&h.url),
            format: format_label(h.format),
            events: events_label(&h.events),
            updated: String::new(),
        })
        .collect();
    for stored in state.store.list_webhook_configs().await? {
        let hook = match parse_hook(state, &stored) {
            Ok(h) => h,
            // A hook this server cannot open is listed with the reason, so it can be
            // deleted or entered again.
            Err(e) => {
                hooks.push(WebhookRow {
                    id: Some(stored.id.to_string()),
                    name: stored.name.clone(),
                    target: e.to_string(),
                    format: "—",
                    events: String::new(),
                    updated: views::time(stored.updated_at),
                });
                continue;
            }
        };
        hooks.push(WebhookRow {
            id: Some(stored.id.to_string()),
            name: stored.name.clone(),
            target: webhook_target(&hook.url),
            format: format_label(hook.format),
            events: events_label(&hook.events),
            updated: format!(
                "{} by {}",
                views::time(stored.updated_at),
                stored.updated_by
            ),
        });
    }
    views::render(&WebhooksTpl {
        page: PageCtx::new(session, "Webhooks", "webhooks"),
        hooks,
        form: form_view("", None, submitted),
        notice,
        error,
    })
}

pub async fn webhooks(State(state): State<SharedState>, session: Session) -> Page {
    webhooks_page(&state, &session, None, None, None).await
}

/// Makes this process send to the hooks as stored now; other replicas follow on their
/// next refresh.
async fn reload(state: &SharedState) -> Result<(), ConsoleError> {
    state.webhooks.reload(&*state.store).await?;
    Ok(())
}

pub async fn webhook_create(State(state): State<SharedState>, f: AdminForm) -> Page {
    let name = f.form.get("name").unwrap_or_default().trim().to_owned();
    let checked = check_hook_name(&name).and_then(|()| webhook_from_form(&f.form, None));
    let hook = match checked {
        Ok(h) => h,
        Err(e) => {
            return webhooks_page(&state, &f.session, Some(&f.form), None, Some(e))
                .await
                .map(refused)
        }
    };
    let record = StoredWebhook {
        id: Uuid::now_v7(),
        name: name.clone(),
        config: serde_json::to_value(&hook).map_err(|e| ConsoleError::BadRequest(e.to_string()))?,
        updated_at: state.clock.now(),
        updated_by: f.session.actor(),
    };
    let record = state.secrets.seal_webhook(record).map_err(sealing)?;
    if !state
        .store
        .create_webhook_config(&record, &by(&f.session, &state))
        .await?
    {
        let e = format!("a webhook named “{name}” exists already");
        return webhooks_page(&state, &f.session, Some(&f.form), None, Some(e))
            .await
            .map(refused);
    }
    reload(&state).await?;
    Ok(see_other("/console/webhooks"))
}

async fn stored_hook(state: &SharedState, id: &str) -> Result<StoredWebhook, ConsoleError> {
    let id = Uuid::parse_str(id).map_err(|_| ConsoleError::NotFound("no such webhook".into()))?;
    state
        .store
        .list_webhook_configs()
        .await?
        .into_iter()
        .find(|h| h.id == id)
        .ok_or_else(|| ConsoleError::NotFound("no such webhook".into()))
}

fn edit_page(
    session: &Session,
    stored: &StoredWebhook,
    hook: &WebhookConfig,
    submitted: Option<&FormData>,
    error: Option<String>,
) -> Page {
    views::render(&WebhookEditTpl {
        page: PageCtx::new(session, format!("Webhook “{}”", stored.name), "webhooks"),
        id: stored.id.to_string(),
        form: form_view(&stored.name, Some(hook), submitted),
        error,
        updated: format!(
            "{} by {}",
            views::time(stored.updated_at),
            stored.updated_by
        ),
    })
}

pub async fn webhook_edit(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> Page {
    let stored = stored_hook(&state, &id).await?;
    let hook = parse_hook(&state, &stored)?;
    edit_page(&session, &stored, &hook, None, None)
}

pub async fn webhook_update(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    f: AdminForm,
) -> Page {
    let stored = stored_hook(&state, &id).await?;
    let before = parse_hook(&state, &stored)?;
    let hook = match webhook_from_form(&f.form, Some(&before)) {
        Ok(h) => h,
        Err(e) => {
            return edit_page(&f.session, &stored, &before, Some(&f.form), Some(e)).map(refused)
        }
    };
    let record = StoredWebhook {
        config: serde_json::to_value(&hook).map_err(|e| ConsoleError::BadRequest(e.to_string()))?,
        updated_at: state.clock.now(),
        updated_by: f.session.actor(),
        ..stored
    };
    let record = state.secrets.seal_webhook(record).map_err(sealing)?;
    if !state
        .store
        .update_webhook_config(&record, &by(&f.session, &state))
        .await?
    {
        return Err(ConsoleError::NotFound("no such webhook".into()));
    }
    reload(&state).await?;
    Ok(see_other("/console/webhooks"))
}

pub async fn webhook_delete(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    f: AdminForm,
) -> Page {
    let stored = stored_hook(&state, &id).await?;
    if !state
        .store
        .delete_webhook_config(stored.id, &by(&f.session, &state))
        .await?
    {
        return Err(ConsoleError::NotFound("no such webhook".into()));
    }
    reload(&state).await?;
    let notice = format!("Deleted the webhook “{}”.", stored.name);
    webhooks_page(&state, &f.session, None, Some(notice), None).await
}

/// "Send test": one signed test event, now, and the HTTP status the receiver answered.
pub async fn webhook_test(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    f: AdminForm,
) -> Page {
    let stored = stored_hook(&state, &id).await?;
    let hook = parse_hook(&state, &stored)?;
    let (notice, error) = match webhooks::send_test(&hook, state.clock.now()).await {
        Ok(status) if (200..300).contains(&status) => (
            Some(format!(
                "Test delivery to “{}” answered HTTP {status}.",
                stored.name
            )),
            None,
        ),
        Ok(status) => (
            None,
            Some(format!(
                "Test delivery to “{}” was refused with HTTP {status}.",
                stored.name
            )),
        ),
        Err(e) => (
            None,
            Some(format!("Test delivery to “{}” failed: {e}", stored.name)),
        ),
    };
    webhooks_page(&state, &f.session, None, notice, error).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn webhook_targets_hide_paths_and_credentials() {
        assert_eq!(
            webhook_target("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            webhook_target("https://user:pw@siem.example:8443/in?k=1"),
            "https://siem.example:8443/…"
        );
    }

    #[test]
    fn a_blank_secret_keeps_the_stored_one_and_bad_forms_are_refused() {
        let stored = serde_json::json!({"api_token": "old-token"});
        let f = form(&[
            ("interval_minutes", "60"),
            ("base_url", "https://acme.okta.com"),
            ("api_token", ""),
            ("search", "status eq \"ACTIVE\""),
        ]);
        let c = source_from_form("okta", "okta", &f, Some(&stored)).unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["api_token"], "old-token");
        // Without a stored secret, the same form lacks it.
        assert!(source_from_form("okta", "okta", &f, None)
            .unwrap_err()
            .contains("API token"));
        let bad = |pairs: &[(&str, &str)], name: &str| {
            let mut pairs = pairs.to_vec();
            pairs.push(("search", "status eq \"ACTIVE\""));
            source_from_form("okta", name, &form(&pairs), Some(&stored)).unwrap_err()
        };
        let ok = [
            ("interval_minutes", "60"),
            ("base_url", "https://acme.okta.com"),
        ];
        assert!(bad(&ok, "").contains("empty"));
        assert!(bad(&ok, "a/b").contains("letters"));
        assert!(bad(&[("interval_minutes", "0"), ok[1]], "o").contains("interval"));
        assert!(bad(&[("interval_minutes", "999999999"), ok[1]], "o").contains("interval"));
        assert!(bad(&[ok[0], ("base_url", "http://acme.okta.com")], "o").contains("http://"));
        assert!(bad(&[ok[0], ("base_url", "not a url")], "o").contains("valid URL"));
        assert!(source_from_form(
            "okta",
            "o",
            &form(&[ok[0], ("base_url", "http://127.0.0.1:9/"), ("search", "x")]),
            Some(&stored)
        )
        .is_ok());
    }

    #[test]
    fn webhook_forms_keep_url_and_secret_when_blank() {
        let stored = WebhookConfig {
            url: "https://hooks.example/x".into(),
            format: Format::Generic,
            secret: sources::Secret("s3cret".into()),
            events: vec![],
        };
        let f = form(&[
            ("format", "slack"),
            ("url", ""),
            ("secret", ""),
            ("events", "device_fixed"),
        ]);
        let h = webhook_from_form(&f, Some(&stored)).unwrap();
        assert_eq!(h.url, stored.url);
        assert_eq!(h.secret.0, "s3cret");
        assert_eq!(h.format, Format::Slack);
        assert_eq!(h.events, vec![EventKind::DeviceFixed]);
        assert!(webhook_from_form(&form(&[("events", "everything")]), Some(&stored)).is_err());
        assert!(webhook_from_form(&form(&[("url", "ftp://x/")]), Some(&stored)).is_err());
        assert!(webhook_from_form(&form(&[("url", "https://x/")]), None).is_err());
    }
}
