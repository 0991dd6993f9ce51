//! Path and query parameters, with the constraints the schema states.

use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// Tenant slug.
    #[param(pattern = r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")]
    pub slug: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EnvPath {
    /// Tenant slug.
    #[param(pattern = r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")]
    pub slug: String,
    /// Environment name.
    #[param(pattern = r"^[a-z][a-z0-9-]{0,20}$")]
    pub env: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RunPath {
    /// Run id (a UUID).
    #[param(pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    /// Token id: the 16 hex digits after `byoc_`.
    #[param(pattern = r"^[0-9a-f]{16}$")]
    pub id: String,
}
