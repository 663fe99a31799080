//! One error type for every HTTP failure. Client mistakes say exactly what was wrong; internal
//! errors are logged and answered with a generic message. Bodies are FHIR OperationOutcomes, as
//! CDS Hooks 3.0 recommends for non-2xx responses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::evaluate::EvaluateError;
use crate::hooks::RequestError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn issue_code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid",
            ApiError::NotFound(_) => "not-found",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::HeadersTooLarge(_) => "too-large",
            ApiError::Unavailable(_) => "transient",
            ApiError::UnsupportedMediaType(_) => "not-supported",
            ApiError::PreconditionFailed(_) => "incomplete",
            ApiError::Internal(_) => "exception",
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> ApiError {
        ApiError::BadRequest(error.to_string())
    }
}

impl From<EvaluateError> for ApiError {
    fn from(error: EvaluateError) -> ApiError {
        match error {
            EvaluateError::Request(error) => error.into(),
            EvaluateError::WrongHook { .. } => ApiError::BadRequest(error.to_string()),
            EvaluateError::MissingData(_) => ApiError::PreconditionFailed(error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error".to_owned()
            }
            other => {
                // Messages may quote what the client sent: escaped and cut before logging.
                tracing::info!(
                    status = other.status().as_u16(),
                    error = %crate::telemetry::loggable(&other.to_string()),
                    "request refused"
                );
                other.to_string()
            }
        };
        let body = json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": self.issue_code(), "diagnostics": message}]
        });
        (self.status(), Json(body)).into_response()
    }
}
