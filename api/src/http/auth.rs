//! Who may read and write.
//!
//! - **Writes** (creating and expiring silences, reloading the config) need
//!   `Authorization: Bearer <server.api_token>`. Without a configured token they are allowed only
//!   while `server.listen` is a loopback address (nobody else can reach the API); otherwise they
//!   are refused with 403, so a server open to the network never takes anonymous writes.
//! - **Reads**: with `server.protect_reads = true`, every request under `/api/v1` except
//!   `/api/v1/openapi.json`, and `/metrics`, need the token too (401 with
//!   `WWW-Authenticate: Bearer`). `/healthz`, `/readyz` and the dashboards' assets stay open.
//!
//! Both read the config in force on every request, so a reload that changes the token applies
//! to the next request.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::config::ServerConfig;
use crate::silences::{check_token, error};

/// The answer to a write that is not allowed; `None` when it is.
pub fn authorize_write(headers: &HeaderMap, server: &ServerConfig) -> Option<Response> {
    match server.api_token.as_ref() {
        Some(token) => check_token(headers, Some(token)),
        None if server.listen.ip().is_loopback() => None,
        None => Some(error(
            StatusCode::FORBIDDEN,
            "writes are disabled: set server.api_token",
        )),
    }
}

/// Whether `path` is a read that `protect_reads` guards.
pub fn is_protected(path: &str) -> bool {
    path == "/metrics" || (path.starts_with("/api/v1/") && path != "/api/v1/openapi.json")
}

/// Middleware: with `protect_reads`, a guarded path needs the bearer token.
pub async fn protect_reads(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = state.config();
    if config.server.protect_reads && is_protected(request.uri().path()) {
        // Config validation makes `protect_reads` need a token; without one nothing gets in.
        let denied = match config.server.api_token.as_ref() {
            Some(token) => check_token(request.headers(), Some(token)),
            None => Some(error(
                StatusCode::UNAUTHORIZED,
                "server.protect_reads is set without server.api_token",
            )),
        };
        if let Some(denied) = denied {
            return denied;
        }
    }
    next.run(request).await
}
