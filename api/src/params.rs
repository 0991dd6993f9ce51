//! Path and query parameters, with the constraints the schema states. A path's identities
//! are checked when the path is extracted: a bad one is a 422 naming the parameter.

use std::collections::HashMap;
use std::str::FromStr;

use axum::extract::{FromRequestParts, Path, Query};
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
pub struct StateVersionPath {
    /// Tenant slug.
    #[param(inline)]
    pub slug: TenantSlug,
    /// Environment name.
    #[param(inline)]
    pub env: EnvName,
    /// A state version (`state_version` of the status, versions of the history); 0 is the
    /// empty state before the first recorded change.
    #[param(minimum = 0)]
    pub version: i64,
}

/// The two versions a state diff compares.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The state version to compare from (0: the empty state).
    #[param(minimum = 0)]
    pub from: i64,
    /// The state version to compare to (0: the empty state).
    #[param(minimum = 0)]
    pub to: i64,
}

/// A state version parameter `name`: a whole number, 0 or more; anything else is a 422
/// naming it.
fn state_version(name: &str, text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
        ApiError::invalid(
            Some(name),
            format!("{name} must be a state version, a whole number 0 or more: got {text:?}"),
        )
    })
}

impl<S: Send + Sync> FromRequestParts<S> for DiffQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(raw) = Query::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        let (mut from, mut to) = (None, None);
        for (name, value) in &raw {
            let slot = match name.as_str() {
                "from" => &mut from,
                "to" => &mut to,
                other => {
                    return Err(ApiError::invalid(
                        Some(other),
                        format!("unknown query parameter {other:?}: expected from and to"),
                    ));
                }
            };
            if slot.is_some() {
                return Err(ApiError::invalid(
                    Some(name),
                    format!("query parameter {name} is given twice"),
                ));
            }
            *slot = Some(state_version(name, value)?);
        }
        let required = |name: &str, value: Option<i64>| {
            value.ok_or_else(|| {
                ApiError::invalid(
                    Some(name),
                    format!("query parameter {name} (a state version) is required"),
                )
            })
        };
        Ok(DiffQuery {
            from: required("from", from)?,
            to: required("to", to)?,
        })
    }
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

impl<S: Send + Sync> FromRequestParts<S> for StateVersionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = Params::of(parts, state).await?;
        let version = params
            .0
            .get("version")
            .ok_or_else(|| ApiError::Internal("the route has no parameter version".into()))?;
        Ok(StateVersionPath {
            slug: params.get("slug")?,
            env: params.get("env")?,
            version: state_version("version", version)?,
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

/// One page of a list, newest first.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Entries before this one (the previous page's `next_before`).
    pub before: Option<i64>,
    /// At most this many, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

impl Page {
    /// The page's size: 1 to 1000, 100 by default.
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit.unwrap_or(100) {
            n @ 1..=1000 => Ok(n),
            _ => Err(ApiError::invalid(Some("limit"), "limit is 1 to 1000")),
        }
    }
}
