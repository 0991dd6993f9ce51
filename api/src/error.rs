use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use byoc_stacks::{ConfigError, DbError};
use serde::Serialize;

/// Every error the API answers with: a status and a JSON body `{error, message, field?}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotReady(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    /// The tenant's account does not (yet) trust byoc: a run would fail at its first call.
    #[error("{0}")]
    NotTrusted(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("too many requests for this token: retry after {}s", retry_after.as_secs().max(1))]
    TooManyRequests { retry_after: std::time::Duration },
    #[error("internal error: {0}")]
    Internal(String),
}

/// The error responses every `/api` route may give, for the OpenAPI description (the
/// responses themselves come from [`ApiError`]).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum CommonErrors {
    /// Invalid input
    #[response(status = 400)]
    Invalid(ErrorBody),
    /// No valid token
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Not found (or another tenant's)
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Too many requests
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
}

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A machine-readable code: `invalid`, `not_found`, `conflict`, ...
    error: String,
    message: String,
    /// The field a validation error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    pub fn invalid(field: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::NotTrusted(_) => (StatusCode::CONFLICT, "not_trusted"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let field = match &self {
            ApiError::Invalid { field, .. } => field.clone(),
            _ => None,
        };
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after } => Some(retry_after.as_secs().max(1)),
            _ => None,
        };
        let body = ErrorBody {
            error: error.to_string(),
            message: self.to_string(),
            field,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        match e {
            DbError::Invalid(m) => ApiError::invalid(None, m),
            DbError::NotFound(m) => ApiError::NotFound(m),
            DbError::Conflict(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> ApiError {
        let field = (!e.field.is_empty()).then_some(e.field.as_str());
        ApiError::invalid(field, format!("environment config: {e}"))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        match e {
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge(format!("request body too large: {}", b.body_text()))
            }
            other => ApiError::invalid(None, other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::invalid(None, e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::invalid(None, e.body_text())
    }
}
