use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::{ApiError, AppState, SchemaState};

/// The readiness check must answer even when the database hangs.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// The process is up and serving.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can do its work: the database answers and its schema is current.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let db = &state.inner.db;
    // Causes go to the log: they may hold the database's address.
    match tokio::time::timeout(READY_TIMEOUT, db.ping()).await {
        Err(_) => {
            tracing::warn!(
                database = db.url(),
                "readiness: the database did not answer"
            );
            return Err(ApiError::NotReady(format!(
                "the database did not answer within {}s",
                READY_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database is unreachable");
            return Err(ApiError::NotReady("the database is unreachable".into()));
        }
        Ok(Ok(())) => {}
    }
    match &*state.inner.schema.borrow() {
        SchemaState::Ready => Ok(Json(json!({ "status": "ready" }))),
        SchemaState::Pending { last_error: None } => Err(ApiError::NotReady(
            "database migrations are being applied".into(),
        )),
        SchemaState::Pending {
            last_error: Some(e),
        } => {
            tracing::warn!(error = %e, "readiness: migrations not applied yet");
            Err(ApiError::NotReady(
                "database migrations are not applied yet: the server retries".into(),
            ))
        }
    }
}
