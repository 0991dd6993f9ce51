//! The audit log, for admins.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::CommonErrors;
use crate::{ApiError, AppState};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    before: Option<i64>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(Page), responses((status = 200, description = "Audit entries, newest first", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let Query(page) = page?;
    let entries = state
        .db()
        .audit_log(page.before, page.limit.unwrap_or(100))
        .await?;
    let next = entries.last().map(|e| e.id);
    Ok(Json(json!({"entries": entries, "next_before": next})))
}
