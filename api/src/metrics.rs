//! `/metrics` in the Prometheus text format: HTTP latencies measured in this process, and
//! runs (by kind and status, queue depth, run and step durations) read from the store,
//! which holds every worker's runs.

use std::fmt::Write;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{ApiError, AppState, Caller};

const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const RUN_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];
const STEP_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// The process's recorder, installed once.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Prefix("byoc_http".into()), HTTP_BUCKETS)
            .expect("buckets are not empty");
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder owns the process: still answer, without HTTP figures.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// Times every routed request, labelled by its route pattern (not the raw path, whose
/// slugs and ids would make unbounded label sets).
pub async fn track(request: Request, next: Next) -> Response {
    handle();
    let start = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("byoc_http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(start.elapsed().as_secs_f64());
    response
}

/// `/metrics` on the API's address: the figures are the operator's, so an admin token.
pub async fn render(caller: Caller, State(state): State<AppState>) -> Result<Response, ApiError> {
    caller.require_admin()?;
    figures(&state).await
}

/// `/metrics` on its own address (`byoc serve --metrics-listen`), which the operator keeps
/// private: no token, as Prometheus scrapes by default.
pub async fn render_open(State(state): State<AppState>) -> Result<Response, ApiError> {
    figures(&state).await
}

async fn figures(state: &AppState) -> Result<Response, ApiError> {
    let m = state.db().run_metrics().await?;
    let drifted = state.db().drifted_environments().await?;
    let mut out = handle().render();
    out.push_str("# HELP byoc_runs Runs recorded, by kind and status.\n# TYPE byoc_runs gauge\n");
    for (kind, status, n) in &m.runs {
        let _ = writeln!(out, "byoc_runs{{kind=\"{kind}\",status=\"{status}\"}} {n}");
    }
    let queued: i64 = m
        .runs
        .iter()
        .filter(|(_, s, _)| s == "queued")
        .map(|(_, _, n)| n)
        .sum();
    out.push_str("# HELP byoc_queue_depth Runs waiting to start.\n# TYPE byoc_queue_depth gauge\n");
    let _ = writeln!(out, "byoc_queue_depth {queued}");
    out.push_str("# HELP byoc_environments_drifted Environments whose last check found drift not repaired since.\n# TYPE byoc_environments_drifted gauge\n");
    let _ = writeln!(out, "byoc_environments_drifted {drifted}");
    histogram(
        &mut out,
        "byoc_run_duration_seconds",
        "Duration of the latest finished runs.",
        "kind",
        &m.run_durations_ms,
        RUN_BUCKETS,
    );
    histogram(
        &mut out,
        "byoc_call_duration_seconds",
        "Duration of the latest provider calls that succeeded.",
        "operation",
        &m.call_durations_ms,
        STEP_BUCKETS,
    );
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// A cumulative histogram per label value, from durations in milliseconds.
fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    samples: &[(String, i64)],
    buckets: &[f64],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut values: Vec<&String> = samples.iter().map(|(v, _)| v).collect();
    values.sort();
    values.dedup();
    for value in values {
        let secs: Vec<f64> = samples
            .iter()
            .filter(|(v, _)| v == value)
            .map(|(_, ms)| *ms as f64 / 1000.0)
            .collect();
        for le in buckets {
            let n = secs.iter().filter(|s| **s <= *le).count();
            let _ = writeln!(out, "{name}_bucket{{{label}=\"{value}\",le=\"{le}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{label}=\"{value}\",le=\"+Inf\"}} {}",
            secs.len()
        );
        let _ = writeln!(
            out,
            "{name}_sum{{{label}=\"{value}\"}} {}",
            secs.iter().sum::<f64>()
        );
        let _ = writeln!(out, "{name}_count{{{label}=\"{value}\"}} {}", secs.len());
    }
}
