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
    match tokio::time::timeout(READY_TIMEOUT, db.ping()).await {
        Err(_) => {
            return Err(ApiError::NotReady(format!(
                "database {} did not answer within {}s",
                db.url(),
                READY_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(e)) => return Err(ApiError::NotReady(e.to_string())),
        Ok(Ok(())) => {}
    }
    match &*state.inner.schema.borrow() {
        SchemaState::Ready => Ok(Json(json!({ "status": "ready" }))),
        SchemaState::Pending { last_error: None } => Err(ApiError::NotReady(format!(
            "database {} migrations are being applied",
            db.url()
        ))),
        SchemaState::Pending {
            last_error: Some(e),
        } => Err(ApiError::NotReady(format!(
            "database migrations not applied yet: {e}"
        ))),
    }
}
