//! The audit log, for admins.

use crate::auth::Caller;
use crate::error::CommonErrors;
use crate::params::Page;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use byoc_model::api::AuditPage;

#[utoipa::path(get, path = "/api/v1/audit", operation_id = "list_audit", tag = "audit", params(Page), responses((status = 200, description = "Audit entries, newest first", body = AuditPage), CommonErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require_admin()?;
    let Query(page) = page?;
    let entries = state.db().audit_log(page.before, page.limit()?).await?;
    let next_before = entries.last().map(|e| e.id);
    Ok(Json(AuditPage {
        entries,
        next_before,
    }))
}
