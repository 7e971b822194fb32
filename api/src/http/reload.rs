//! `POST /api/v1/config/reload`: a write (see [`authorize_write`]) that runs
//! [`crate::reload::reload`] and answers its outcome, `200` with what changed or the refusal's
//! status with every error.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::AppState;
use super::auth::authorize_write;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/config/reload", post(reload_route))
}

async fn reload_route(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(denied) = authorize_write(&state, &headers) {
        return denied;
    }
    match crate::reload::reload(state.reload_target()).await {
        Ok(done) => axum::Json(done).into_response(),
        Err(refused) => (refused.status, axum::Json(refused)).into_response(),
    }
}
