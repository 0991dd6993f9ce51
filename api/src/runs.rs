//! One run: its record and plan, cancellation, events.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::header::ACCEPT;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use byoc_model::api::{EventPage, PlanView, RunDetail, RunView};
use byoc_model::{Run, RunId};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::auth::Caller;
use crate::error::CommonErrors;
use crate::params::RunPath;
use crate::streams::{Progress, Slot};
use crate::{ApiError, AppState};

/// The run, if the caller may see its tenant (404 otherwise).
async fn visible_run(state: &AppState, caller: &Caller, id: &str) -> Result<Run, ApiError> {
    let not_found = || ApiError::NotFound(format!("run {id:?}"));
    let run = match state.db().run(id).await {
        Ok(run) => run,
        Err(byoc_stacks::DbError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if !caller.is_admin() {
        let tenant = state.db().stack_tenant(&run.stack).await?;
        caller.may_see(tenant).map_err(|_| not_found())?;
    }
    Ok(caller
        .present(state, vec![run])
        .await?
        .pop()
        .expect("one run in, one out"))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", operation_id = "show_run", tag = "runs", params(RunPath), responses((status = 200, description = "The run with its plan and summary", body = RunDetail), CommonErrors), security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    RunPath { id }: RunPath,
) -> Result<Json<RunDetail>, ApiError> {
    let run = visible_run(&state, &caller, &id).await?;
    let plan = state
        .db()
        .run_plan(&id)
        .await?
        .map(|p| PlanView::from_stored(&p))
        .transpose()
        .map_err(|e| ApiError::Internal(format!("stored plan of run {id}: {e}")))?;
    Ok(Json(RunDetail { run, plan }))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", operation_id = "cancel_run", tag = "runs", params(RunPath), responses((status = 200, description = "Cancelled (queued) or flagged (running); 409 `conflict` naming its status for a run that has already finished", body = RunView), CommonErrors), security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    RunPath { id }: RunPath,
) -> Result<Json<RunView>, ApiError> {
    visible_run(&state, &caller, &id).await?;
    let run = state.db().request_cancel(&id, &caller.actor()).await?;
    let run = caller
        .present(&state, vec![run])
        .await?
        .pop()
        .expect("one run in, one out");
    Ok(Json(RunView { run }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct After {
    /// Events after this seq (the last one seen).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many, default 1000.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A JSON list, or with `Accept: text/event-stream` a live SSE stream (one event per run
/// event, its id the event's seq) that ends when the run does and resumes after
/// `Last-Event-ID`.
#[utoipa::path(get, path = "/api/v1/runs/{id}/events", operation_id = "run_events", tag = "runs", params(RunPath, After), responses((status = 200, description = "Events as JSON; with `Accept: text/event-stream` a live SSE stream of `event` events (data: a RunEvent) that ends with an `end` event", content((EventPage = "application/json"), (String = "text/event-stream"))), CommonErrors), security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    RunPath { id }: RunPath,
    headers: HeaderMap,
    query: Result<Query<After>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(Some("limit"), "limit is 1 to 1000"));
    }
    if q.after.is_some_and(|after| after < 0) {
        return Err(ApiError::invalid(
            Some("after"),
            "after is an event seq: 0 or more",
        ));
    }
    let run = visible_run(&state, &caller, &id).await?;
    let wants_stream = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        let events = state
            .db()
            .run_events(&id, q.after.unwrap_or(0), limit)
            .await?;
        return Ok(Json(EventPage {
            run_id: id,
            status: run.status,
            events,
        })
        .into_response());
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<i64>())
        .transpose()
        .map_err(|_| {
            ApiError::invalid(
                Some("Last-Event-ID"),
                "Last-Event-ID is an event seq (a number)",
            )
        })?;
    let after = resume.or(q.after).unwrap_or(0);
    let slot = state.streams().open(&caller.0.id).map_err(|refused| {
        tracing::warn!(token = %caller.0.id, ?refused, "event stream refused");
        ApiError::TooManyRequests {
            retry_after: Duration::from_secs(5),
        }
    })?;
    Ok(Sse::new(live(state, id, after, caller.0.id.clone(), slot))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The last event of a stream that cannot go on; the cause is logged, not sent.
fn stream_error(run_id: &str, e: &str) -> SseEvent {
    tracing::error!(run_id, error = %e, "event stream ended");
    SseEvent::default()
        .event("error")
        .data(json!({"error": "unavailable", "message": "the event stream was interrupted: reconnect with Last-Event-ID"}).to_string())
}

/// A last event that tells the client why the stream ends and whether to reconnect.
fn closing(kind: &str, message: &str) -> SseEvent {
    SseEvent::default()
        .event(kind)
        .data(json!({"message": message}).to_string())
}

/// Events after `after` as they are recorded; a last `end` event carries the run's final
/// status. The run's progress comes from the poller its streams share; the stream ends
/// early (`revoked`) if the caller's token stops being valid, and after the maximum
/// duration (`reconnect`: resume with Last-Event-ID).
fn live(
    state: AppState,
    run_id: RunId,
    after: i64,
    token: String,
    slot: Slot,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    struct Cursor {
        state: AppState,
        run_id: RunId,
        after: i64,
        pending: std::collections::VecDeque<SseEvent>,
        done: bool,
        progress: watch::Receiver<Option<Progress>>,
        valid: watch::Receiver<Option<bool>>,
        deadline: tokio::time::Instant,
        _slot: Slot,
    }
    let streams = state.streams();
    let cursor = Cursor {
        progress: streams.run(state.db(), &run_id),
        valid: streams.token(state.db(), &token),
        deadline: tokio::time::Instant::now() + streams.limits().max_duration,
        state,
        run_id,
        after,
        pending: Default::default(),
        done: false,
        _slot: slot,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(event) = c.pending.pop_front() {
                return Some((Ok(event), c));
            }
            if c.done {
                return None;
            }
            if *c.valid.borrow_and_update() == Some(false) {
                c.pending
                    .push_back(closing("revoked", "the token was revoked"));
                c.done = true;
                continue;
            }
            let progress = c.progress.borrow_and_update().clone();
            match progress {
                Some(Ok((seq, _))) if seq > c.after => {
                    match c.state.db().run_events(&c.run_id, c.after, 1000).await {
                        Ok(events) => {
                            for e in events {
                                c.after = e.seq;
                                let data = serde_json::to_string(&e).expect("events serialize");
                                c.pending.push_back(
                                    SseEvent::default()
                                        .id(e.seq.to_string())
                                        .event("event")
                                        .data(data),
                                );
                            }
                        }
                        Err(e) => {
                            c.pending.push_back(stream_error(&c.run_id, &e.to_string()));
                            c.done = true;
                        }
                    }
                    continue;
                }
                // Read in one go with the last seq: a finished run has all its events stored.
                Some(Ok((_, status))) if status.is_finished() => {
                    c.pending.push_back(
                        SseEvent::default()
                            .event("end")
                            .data(json!({"status": status}).to_string()),
                    );
                    c.done = true;
                    continue;
                }
                Some(Err(e)) => {
                    c.pending.push_back(stream_error(&c.run_id, &e));
                    c.done = true;
                    continue;
                }
                _ => {}
            }
            tokio::select! {
                changed = c.progress.changed() => if changed.is_err() {
                    c.pending.push_back(stream_error(&c.run_id, "the run's poller stopped"));
                    c.done = true;
                },
                _ = c.valid.changed() => {}
                () = tokio::time::sleep_until(c.deadline) => {
                    c.pending.push_back(closing(
                        "reconnect",
                        "the stream reached its maximum duration: reconnect with Last-Event-ID",
                    ));
                    c.done = true;
                }
            }
        }
    })
}
