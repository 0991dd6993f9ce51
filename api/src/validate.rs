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
