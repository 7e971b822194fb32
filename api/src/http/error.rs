//! [`ApiError`]: every error the HTTP layer answers, `{"error": "..."}` with its status. The
//! errors of `app` get their status here, once: a silence refused is 400, a config reload
//! refused 400, 500 or 503 by its reason.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::reload::{Problem, Reason, Refused};
use crate::app::silences::SilenceError;

/// A refused or failed request: its status and what was wrong, `{"error": message}` on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The answer's status.
    pub status: StatusCode,
    /// What was wrong, lowercase, naming the offending value.
    pub message: String,
    /// Every problem of a refused config reload, `errors` beside `error` (the `ReloadError`
    /// schema); `None` for every other error.
    pub problems: Option<Vec<Problem>>,
    /// Whether the answer asks for the bearer token (`WWW-Authenticate: Bearer`).
    pub challenge: bool,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            problems: None,
            challenge: false,
        }
    }

    /// 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 403: not allowed, whoever asks.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 401 with `WWW-Authenticate: Bearer`: the bearer token is missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, message)
        }
    }

    /// 503: the database did not answer; asking again later may work.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(problems) = self.problems {
            body["errors"] = serde_json::to_value(problems).expect("plain data");
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A new silence refused: 400 (a size limit is also counted, by the route).
impl From<SilenceError> for ApiError {
    fn from(e: SilenceError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

/// A config reload refused: 500 when the file cannot be read, 503 when the database does not
/// record it, else 400; every problem in `errors`.
impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        let status = match r.reason {
            Reason::Unreadable => StatusCode::INTERNAL_SERVER_ERROR,
            Reason::Invalid | Reason::RestartRequired => StatusCode::BAD_REQUEST,
            Reason::StoreFailed => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError {
            problems: Some(r.errors),
            ..ApiError::new(status, r.error)
        }
    }
}
