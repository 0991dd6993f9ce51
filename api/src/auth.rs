//! Bearer tokens: admin tokens, and tenant tokens that see and act on their own tenant
//! only (another tenant's objects answer 404, never 403, so their existence does not leak).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use byoc_model::{ApiToken, Run, Tenant};
use byoc_stacks::DbError;

use crate::{ApiError, AppState};

/// How a tenant token sees an actor that is not one of its tenant's tokens.
pub const NEUTRAL_ACTOR: &str = "operator";

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Caller(pub ApiToken);

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.0.tenant_id.is_none()
    }

    /// What the audit log records as the actor.
    pub fn actor(&self) -> String {
        format!("token:{} ({})", self.0.id, self.0.name)
    }

    /// Runs as this caller may see them: a tenant token sees its own tenant's tokens as the
    /// requesters, and every other actor (the provider's admin tokens) as `operator`.
    pub async fn present(
        &self,
        state: &AppState,
        mut runs: Vec<Run>,
    ) -> Result<Vec<Run>, ApiError> {
        let Some(own) = &self.0.tenant_id else {
            return Ok(runs);
        };
        let mut seen: std::collections::HashMap<String, bool> = Default::default();
        for run in &mut runs {
            let shown = match seen.get(&run.requested_by) {
                Some(shown) => *shown,
                None => {
                    let token_id = run
                        .requested_by
                        .strip_prefix("token:")
                        .and_then(|rest| rest.split(' ').next());
                    let shown = match token_id {
                        Some(id) => match state.db().token(id).await {
                            Ok(token) => token.tenant_id.as_ref() == Some(own),
                            Err(DbError::NotFound(_)) => false,
                            Err(e) => return Err(e.into()),
                        },
                        None => false,
                    };
                    seen.insert(run.requested_by.clone(), shown);
                    shown
                }
            };
            if !shown {
                run.requested_by = NEUTRAL_ACTOR.to_string();
            }
        }
        Ok(runs)
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this needs an admin token; a tenant token acts on its own tenant only".into(),
            ))
        }
    }

    /// The tenant, if this caller may see it; 404 otherwise, as if it did not exist.
    pub fn may_see(&self, tenant: Tenant) -> Result<Tenant, ApiError> {
        match &self.0.tenant_id {
            Some(own) if *own != tenant.id => {
                Err(ApiError::NotFound(format!("tenant {:?}", tenant.slug)))
            }
            _ => Ok(tenant),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized("missing Authorization: Bearer <token>".into())
        })?;
        let text = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header is not Bearer <token>".into())
            })?;
        let token = state
            .db()
            .authenticate(text)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the token is unknown or revoked".into()))?;
        state
            .admit(&token.id)
            .map_err(|wait| ApiError::TooManyRequests { retry_after: wait })?;
        Ok(Caller(token))
    }
}
