//! `POST /api/v1/config/reload`: a write (see [`authorize_write`]) that runs
//! [`crate::app::reload::reload`] and answers its outcome, `200` with what changed or the refusal's
//! status (see [`ApiError`]) with every error.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};

use super::auth::authorize_write;
use super::error::ApiError;
use super::state::AppState;
use crate::app::reload::{Reloaded, reload};

/// The routes of the reload.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/config/reload", post(reload_route))
}

async fn reload_route(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Reloaded>, ApiError> {
    authorize_write(&state, &headers)?;
    Ok(Json(reload(state.reload_target()).await?))
}
