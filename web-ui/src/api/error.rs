//! The API's one error: a status and words for the person, in the shape the
//! one who asked reads. Every handler and the security layer answer through
//! it, so how a failure becomes an HTTP answer is decided here only.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    shape: Shape,
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `{"error": "..."}`: the page's fetches read `data.error` (app.js).
    Json,
    /// Plain text: a navigation (a download, the framed PDF) or a refusal by
    /// the security layer, which the browser shows as it is.
    Text,
}

pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            shape: Shape::Json,
        }
    }

    /// The same, answered as plain text.
    pub fn text(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            shape: Shape::Text,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// The journal or the workspace failed under a request: not the person's doing.
impl From<deskhand_runtime::Error> for ApiError {
    fn from(e: deskhand_runtime::Error) -> Self {
        Self::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.shape {
            Shape::Json => (self.status, Json(json!({"error": self.message}))).into_response(),
            Shape::Text => (
                self.status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{}\n", self.message),
            )
                .into_response(),
        }
    }
}
