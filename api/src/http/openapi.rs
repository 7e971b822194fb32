//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route, hand-written in
//! `api/openapi.json`. No token needed, also with `protect_reads`. The tests validate every JSON
//! body the routes answer against its schema there, and check that the document and the router
//! list the same routes.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

/// `GET /api/v1/openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
