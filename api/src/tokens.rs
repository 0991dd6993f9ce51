//! API tokens: created (the secret shown once), listed, revoked. Admin only.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::CommonErrors;
use crate::{ApiError, AppState};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    /// A tenant slug: the token acts on that tenant only. Absent: an admin token.
    tenant: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken, responses((status = 201, description = "The token; its secret shown this once", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_admin()?;
    let Json(body) = body?;
    crate::validate::display_name("name", &body.name, byoc_stacks::TOKEN_NAME_MAX)?;
    let tenant_id = match &body.tenant {
        Some(slug) => {
            crate::validate::slug(slug).map_err(|_| {
                ApiError::invalid(Some("tenant"), format!("{slug:?} is not a tenant slug"))
            })?;
            Some(state.db().tenant(slug).await?.id)
        }
        None => None,
    };
    let (token, secret) = state
        .db()
        .create_token(&body.name, tenant_id.as_deref(), &caller.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "secret": secret})),
    ))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, description = "Every token", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(json!({"tokens": state.db().tokens(None).await?})))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path, description = "Token id")), responses((status = 200, description = "Revoked", body = Object), CommonErrors), security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(
        json!({"token": state.db().revoke_token(&id, &caller.actor()).await?}),
    ))
}
