//! One error type for every handler: a status and a message that is safe to show.
//!
//! Unexpected failures (database, I/O) are logged with their cause chain and answered with a
//! generic 500, so internals never leak to clients.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered to the client.
#[derive(Debug)]
pub struct AppError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message for the client.
    pub message: String,
}

impl AppError {
    /// 400: the request is malformed or invalid.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 401: no valid credentials.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication required")
    }
    /// 403: credentials valid but not allowed here.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
    /// 409: conflicts with stored state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// A JSON body that could not be read: keeps axum's status (400, 413, 415, 422).
    pub fn from_json(e: axum::extract::rejection::JsonRejection) -> Self {
        Self::new(e.status(), e.body_text())
    }
    /// Any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<crate::db::StoreError> for AppError {
    fn from(e: crate::db::StoreError) -> Self {
        use crate::db::StoreError as S;
        match e {
            S::NotFound(what) => Self::not_found(what),
            S::Conflict(m) => Self::conflict(m),
            S::Invalid(m) => Self::bad(m),
            S::Refused(m) => Self::forbidden(m),
            S::Busy => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is busy; please retry in a moment",
            ),
            S::Unavailable(m) => Self::new(StatusCode::SERVICE_UNAVAILABLE, m),
            S::Database(e) => Self::from(e),
            S::Internal(m) => Self::from(anyhow::anyhow!(m)),
        }
    }
}

impl From<crate::secrets::SecretError> for AppError {
    fn from(e: crate::secrets::SecretError) -> Self {
        Self::from(crate::db::StoreError::from(e))
    }
}

impl From<crate::model::Invalid> for AppError {
    fn from(e: crate::model::Invalid) -> Self {
        Self::bad(e.0)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        eprintln!("arbiter-server: database error: {e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        eprintln!("arbiter-server: internal error: {e:#}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// Handler result.
pub type AppResult<T> = Result<T, AppError>;
