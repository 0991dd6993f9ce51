//! Bearer tokens: admin tokens, and tenant tokens that see and act on their own tenant
//! only (another tenant's objects answer 404, never 403, so their existence does not leak).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use byoc_model::{ApiToken, Run, Tenant};
use byoc_stacks::DbError;

use crate::{ApiError, AppState};

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 7235).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

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
        // A client that keeps presenting bad tokens is refused before the store is asked.
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let too_many = |wait| ApiError::TooManyRequests { retry_after: wait };
        state.admit_client(client).map_err(too_many)?;
        let refused = |message: &str| match state.strike(client) {
            Err(wait) => too_many(wait),
            Ok(()) => ApiError::Unauthorized(message.into()),
        };
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return Err(refused("missing Authorization: Bearer <token>"));
        };
        let Some(text) = header.to_str().ok().and_then(bearer) else {
            return Err(refused("the Authorization header is not Bearer <token>"));
        };
        let Some(token) = state.db().authenticate(text).await? else {
            return Err(refused("the token is unknown, revoked or expired"));
        };
        state.admit(&token.id).map_err(too_many)?;
        Ok(Caller(token))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer t", "bearer t", "BEARER  t ", "BeArEr t"] {
            assert_eq!(bearer(header), Some("t"), "{header:?}");
        }
        for header in ["Basic t", "Bearer", "Bearer ", "Bearert", "t"] {
            assert_eq!(bearer(header), None, "{header:?}");
        }
    }
}
