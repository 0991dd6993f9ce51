use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, RETRY_AFTER};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use byoc_model::ConfigError;
pub use byoc_model::api::ErrorBody;
use byoc_stacks::DbError;

/// Every error the API answers with: a status and a JSON body `{error, message, field?}`.
/// Server faults (5xx) say nothing of their cause: it is logged under the request id, which
/// the body carries.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The schema is not current yet.
    #[error("{0}")]
    NotReady(String),
    /// The database or the queue cannot be reached now; the detail is logged.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    /// Well-formed input that breaks a rule: 422, naming the field.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// A body that is not JSON, or not a JSON request: 400.
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    StackNameTaken(String),
    /// The tenant's account does not (yet) trust byoc: a run would fail at its first call.
    #[error("{0}")]
    NotTrusted(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("too many requests for this token: retry after {}s", retry_after.as_secs().max(1))]
    TooManyRequests { retry_after: std::time::Duration },
    /// A stack or tenant has as many unfinished runs as it may: 429, naming the cap.
    #[error("{0}")]
    TooManyRuns(String),
    /// A bug or corrupt data; the detail is logged, never shown.
    #[error("{0}")]
    Internal(String),
}

/// The error responses every `/api` route may give, for the OpenAPI description (the
/// responses themselves come from [`ApiError`]).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum CommonErrors {
    /// Malformed body (not JSON)
    #[response(status = 400)]
    Malformed(ErrorBody),
    /// No valid token
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Needs an admin token
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Not found (or another tenant's)
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Conflicts with the current state: `conflict`, `stack_name_taken`, `not_trusted`
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// Body too large
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Invalid input; `field` names what is wrong
    #[response(status = 422)]
    Invalid(ErrorBody),
    /// Too many requests for the token (`too_many_requests`, with Retry-After), or too many
    /// unfinished runs of the stack or tenant (`too_many_runs`)
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// Server fault; the body carries the request id
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The database or queue is unavailable; retry after `Retry-After` seconds
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// A 5xx response, for [`request_id_on_faults`] to give the request id, and what it hides
/// (if anything) to log under that id.
#[derive(Clone)]
struct Fault {
    body: ErrorBody,
    detail: Option<String>,
}

/// Seconds a client should wait before retrying a 503.
const RETRY_UNAVAILABLE_SECS: u64 = 5;

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
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::StackNameTaken(_) => (StatusCode::CONFLICT, "stack_name_taken"),
            ApiError::NotTrusted(_) => (StatusCode::CONFLICT, "not_trusted"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ApiError::TooManyRuns(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_runs"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// What the caller is told.
    fn public_message(&self) -> String {
        match self {
            ApiError::Unavailable(_) => {
                format!("the database or queue is unavailable: retry in {RETRY_UNAVAILABLE_SECS}s")
            }
            ApiError::Internal(_) => {
                "internal error: the server logs say more under this request id".into()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error) = self.status_and_code();
        let field = match &self {
            ApiError::Invalid { field, .. } => field.clone(),
            _ => None,
        };
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after } => Some(retry_after.as_secs().max(1)),
            ApiError::Unavailable(_) | ApiError::NotReady(_) => Some(RETRY_UNAVAILABLE_SECS),
            _ => None,
        };
        let body = ErrorBody {
            error: error.to_string(),
            message: self.public_message(),
            field,
            request_id: None,
        };
        let fault = status.is_server_error().then(|| Fault {
            body: body.clone(),
            // Not ready says all there is; the others hide their cause.
            detail: (!matches!(self, ApiError::NotReady(_))).then(|| self.to_string()),
        });
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(RETRY_AFTER, secs.into());
        }
        if let Some(fault) = fault {
            response.extensions_mut().insert(fault);
        }
        response
    }
}

/// Middleware: a server fault's body gets the request's id, and its hidden cause is logged
/// under that id.
pub async fn request_id_on_faults(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    let Some(fault) = response.extensions_mut().remove::<Fault>() else {
        return response;
    };
    if let Some(detail) = &fault.detail {
        tracing::error!(request_id = id.as_deref().unwrap_or("-"), %path, status = %response.status(), error = %detail, "request failed");
    }
    let body = ErrorBody {
        request_id: id,
        ..fault.body
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    let bytes = serde_json::to_vec(&body).expect("error bodies serialize");
    Response::from_parts(parts, Body::from(bytes))
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        if e.is_unavailable() {
            return ApiError::Unavailable(e.to_string());
        }
        match e {
            DbError::Invalid(m) => ApiError::invalid(None, m),
            DbError::Refused { field, message } => ApiError::invalid(Some(field), message),
            DbError::NotFound(m) => ApiError::NotFound(m),
            DbError::Conflict(m) => ApiError::Conflict(m),
            e @ DbError::TooManyRuns { .. } => ApiError::TooManyRuns(e.to_string()),
            DbError::StackNameTaken(name) => ApiError::StackNameTaken(format!(
                "stack name {name} is taken by another environment: AWS names and tags derive from it, so it must be unique; choose another environment name"
            )),
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
            // Bodies are read as JSON values and then decoded ([`decode`]), which names the
            // field; a typed body would land here.
            JsonRejection::JsonDataError(data) => ApiError::invalid(None, data.body_text()),
            other => ApiError::Malformed(other.body_text()),
        }
    }
}

/// A request body as the type `T` names it: a JSON object (serde would also take an array
/// for a struct), every error naming the field it is about.
/// An optional JSON object body: none (or `null`) is `T::default()`.
pub fn decode_optional<T: serde::de::DeserializeOwned + Default>(
    body: Result<axum::Json<serde_json::Value>, JsonRejection>,
) -> Result<T, ApiError> {
    match body {
        Ok(axum::Json(serde_json::Value::Null)) | Err(JsonRejection::MissingJsonContentType(_)) => {
            Ok(T::default())
        }
        Ok(axum::Json(body)) => decode(body),
        Err(e) => Err(e.into()),
    }
}

pub fn decode<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    if !body.is_object() {
        return Err(ApiError::invalid(None, "the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        if path == "." {
            ApiError::invalid(None, message)
        } else {
            ApiError::invalid(Some(&path), format!("{path}: {message}"))
        }
    })
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
