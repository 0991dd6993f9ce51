//! API tokens: created (the secret shown once), listed, revoked. Admin only.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use byoc_model::api::{CreateToken, TokenCreated, TokenList, TokenView};

use crate::auth::Caller;
use crate::error::{CommonErrors, decode};
use crate::params::TokenPath;
use crate::{ApiError, AppState};

#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "create_token", tag = "tokens", request_body = CreateToken, responses((status = 201, description = "The token; its secret shown this once", body = TokenCreated, links(("RevokeToken" = (operation_id = "revoke_token", parameters(("id" = "$response.body#/token/id")))))), CommonErrors), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    caller.require_admin()?;
    let Json(body) = body?;
    let body: CreateToken = decode(body)?;
    crate::validate::display_name("name", &body.name, byoc_stacks::TOKEN_NAME_MAX)?;
    let tenant_id = match &body.tenant {
        Some(slug) => Some(state.db().tenant(slug).await?.id),
        None => None,
    };
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days @ 1..=3650) => Some(byoc_stacks::now_ms() + i64::from(days) * 86_400_000),
        Some(_) => {
            return Err(ApiError::invalid(
                Some("expires_in_days"),
                "expires_in_days is 1 to 3650",
            ));
        }
    };
    let (token, secret) = state
        .db()
        .create_expiring_token(
            &body.name,
            tenant_id.as_deref(),
            expires_at,
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(TokenCreated { token, secret })))
}

#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "list_tokens", tag = "tokens", responses((status = 200, description = "Every token", body = TokenList), CommonErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TokenList>, ApiError> {
    caller.require_admin()?;
    Ok(Json(TokenList {
        tokens: state.db().tokens(None).await?,
    }))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", operation_id = "revoke_token", tag = "tokens", params(TokenPath), responses((status = 200, description = "Revoked", body = TokenView), CommonErrors), security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(TokenPath { id }): Path<TokenPath>,
) -> Result<Json<TokenView>, ApiError> {
    caller.require_admin()?;
    if id == caller.0.id {
        return Err(ApiError::Conflict(
            "a token cannot revoke itself: revoke it with another admin token".into(),
        ));
    }
    let token = state.db().revoke_token(&id, &caller.actor()).await?;
    state.forget_tokens(|cached| cached.id == token.id);
    Ok(Json(TokenView { token }))
}
