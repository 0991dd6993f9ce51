//! Body fields checked with the model's rules, errors naming the field (identities are
//! checked as they are decoded: `byoc_model::TenantSlug` and the others).

use byoc_model::Invalid;

use crate::ApiError;

fn field(name: &str, result: Result<(), Invalid>) -> Result<(), ApiError> {
    result.map_err(|Invalid(m)| ApiError::invalid(Some(name), m))
}

/// A name a person types (a tenant's, a token's): `max` characters, no control characters.
pub fn display_name(name: &str, value: &str, max: usize) -> Result<(), ApiError> {
    field(name, byoc_model::validate_display_name(name, value, max))
}

pub fn labels(value: &std::collections::BTreeMap<String, String>) -> Result<(), ApiError> {
    byoc_model::validate_labels(value).map_err(|Invalid(m)| {
        // The message starts with the label's path, `labels.{key}`.
        let path = m.split(':').next().unwrap_or("labels").to_string();
        ApiError::invalid(Some(&path), m)
    })
}
