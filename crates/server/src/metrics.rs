//! Prometheus metrics, served at `/metrics` in the text exposition format: requests and
//! their latency per route (the route pattern, never the raw path, so device ids do not
//! explode the label set), parked long-polls, and ingest lag (how long reports took from the
//! agent's `sent_at` to the server, which grows when agents queue reports offline or the
//! server falls behind).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::api::SharedState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~65 s: long-polls are held for minutes and land in +Inf, which is fine.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub parked_long_polls: Gauge,
    pub ingest_lag: Histogram,
    pub reports_ingested: Counter,
    pub enroll_rate_limited: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tandem");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let parked_long_polls = Gauge::default();
        // 10 ms to ~11 days: agents queue reports while offline.
        let ingest_lag = Histogram::new(exponential_buckets(0.01, 4.0, 14));
        let reports_ingested = Counter::default();
        let enroll_rate_limited = Counter::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            latency.clone(),
        );
        registry.register(
            "policy_long_polls_parked",
            "Policy long-polls held open right now",
            parked_long_polls.clone(),
        );
        registry.register(
            "report_ingest_lag_seconds",
            "Time from a report's sent_at to its storage",
            ingest_lag.clone(),
        );
        registry.register(
            "reports_ingested",
            "Reports stored (replays not counted)",
            reports_ingested.clone(),
        );
        registry.register(
            "enroll_rate_limited",
            "Enrolment requests refused by the per-address rate limit",
            enroll_rate_limited.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            parked_long_polls,
            ingest_lag,
            reports_ingested,
            enroll_rate_limited,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Middleware: counts and times every request by its route pattern.
pub async fn track(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let m = &state.metrics;
    m.latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
pub async fn serve(State(state): State<SharedState>) -> Response {
    let parked = *state.hub.parked().borrow();
    state
        .metrics
        .parked_long_polls
        .set(i64::try_from(parked).unwrap_or(i64::MAX));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// A shared handle, for `AppState`.
pub type SharedMetrics = Arc<Metrics>;
