//! Path and body fields checked with the stack model's rules, errors naming the field.

use crate::ApiError;

fn field(name: &str, result: Result<(), byoc_stacks::DbError>) -> Result<(), ApiError> {
    result.map_err(|e| match e {
        byoc_stacks::DbError::Invalid(m) => ApiError::invalid(Some(name), m),
        other => other.into(),
    })
}

pub fn slug(value: &str) -> Result<(), ApiError> {
    field("slug", byoc_stacks::validate_slug(value))
}

pub fn env(value: &str) -> Result<(), ApiError> {
    field("env", byoc_stacks::validate_env(value))
}

pub fn account_id(value: &str) -> Result<(), ApiError> {
    field("aws_account_id", byoc_stacks::validate_account_id(value))
}

/// A name a person types (a tenant's, a token's): `max` characters, no control characters.
pub fn display_name(name: &str, value: &str, max: usize) -> Result<(), ApiError> {
    field(name, byoc_stacks::validate_display_name(name, value, max))
}

pub fn labels(value: &std::collections::BTreeMap<String, String>) -> Result<(), ApiError> {
    byoc_stacks::validate_labels(value).map_err(|e| match e {
        // The message starts with the label's path, `labels.{key}`.
        byoc_stacks::DbError::Invalid(m) => {
            let path = m.split(':').next().unwrap_or("labels").to_string();
            ApiError::invalid(Some(&path), m)
        }
        other => other.into(),
    })
}
