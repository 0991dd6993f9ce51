//! The audit log, for admins.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use byoc_model::api::AuditPage;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::CommonErrors;
use crate::{ApiError, AppState};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Entries with an id below this (the previous page's `next_before`).
    before: Option<i64>,
    /// At most this many, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/audit", operation_id = "list_audit", tag = "audit", params(Page), responses((status = 200, description = "Audit entries, newest first", body = AuditPage), CommonErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require_admin()?;
    let Query(page) = page?;
    let entries = state
        .db()
        .audit_log(page.before, page.limit.unwrap_or(100))
        .await?;
    let next_before = entries.last().map(|e| e.id);
    Ok(Json(AuditPage {
        entries,
        next_before,
    }))
}
