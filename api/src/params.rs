//! Path and query parameters, with the constraints the schema states. A path's identities
//! are checked when the path is extracted: a bad one is a 422 naming the parameter.

use std::collections::HashMap;
use std::str::FromStr;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use byoc_model::{EnvName, Invalid, RunId, TenantSlug};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiError;

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// Tenant slug.
    #[param(inline)]
    pub slug: TenantSlug,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EnvPath {
    /// Tenant slug.
    #[param(inline)]
    pub slug: TenantSlug,
    /// Environment name.
    #[param(inline)]
    pub env: EnvName,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RunPath {
    /// Run id (a UUID).
    #[param(inline)]
    pub id: RunId,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    /// Token id: the 16 hex digits after `byoc_`.
    #[param(pattern = r"^[0-9a-f]{16}$")]
    pub id: String,
}

/// A request's path parameters, each parsed as its identity.
struct Params(HashMap<String, String>);

impl Params {
    async fn of<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<Params, ApiError> {
        let Path(raw) = Path::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        Ok(Params(raw))
    }

    /// Parameter `name`; a value that breaks its rule is a 422 naming it.
    fn get<T: FromStr<Err = Invalid>>(&self, name: &str) -> Result<T, ApiError> {
        let value = self
            .0
            .get(name)
            .ok_or_else(|| ApiError::Internal(format!("the route has no parameter {name}")))?;
        value
            .parse()
            .map_err(|Invalid(message)| ApiError::invalid(Some(name), message))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TenantPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = Params::of(parts, state).await?;
        Ok(TenantPath {
            slug: params.get("slug")?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for EnvPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = Params::of(parts, state).await?;
        Ok(EnvPath {
            slug: params.get("slug")?,
            env: params.get("env")?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RunPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = Params::of(parts, state).await?;
        Ok(RunPath {
            id: params.get("id")?,
        })
    }
}
