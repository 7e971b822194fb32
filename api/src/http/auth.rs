//! Who may read and write, and from where. One middleware, [`guard`], runs before every route;
//! the write routes also call [`authorize_write`].
//!
//! - **Names** (DNS rebinding): without `server.protect_reads` (reads not guarded by a token), a
//!   request is served only when its `Host` (and an HTTP/2 or absolute-form authority) names
//!   `localhost`, an IP address, the host of `server.external_url` or a name in
//!   `server.allowed_hosts`; any port. Else 403 (not 421 Misdirected Request, which Chromium
//!   retries on a new connection). A page of another site whose name was made to
//!   resolve to this server sends its own name in `Host`, so it reads nothing. A name only
//!   rebinds through DNS: an IP address in `Host` is this server's own.
//! - **Cross-site writes**, in every configuration: a request with a method other than GET and
//!   HEAD is a write. Its `Origin`, when it has one, must be this server's own (the scheme, host
//!   and port it was sent to, the origin of `server.external_url`, or a name in
//!   `server.allowed_hosts`): else 403. `Origin: null` is never own. Its body must be JSON: a
//!   write with a body or a `Content-Type` other than `application/json` is refused with 415
//!   (`POST /api/v1/silences` needs one, see [`require_json`]). A browser sends `Origin` with
//!   every cross-origin write, and a form can only send `application/x-www-form-urlencoded`,
//!   `multipart/form-data` or `text/plain`; a non-browser client (the CLI, curl) sends none.
//! - **Writes** (creating and expiring silences, reloading the config) need
//!   `Authorization: Bearer <server.api_token>`. Without a configured token they are allowed only
//!   while `server.listen` is a loopback address (nobody else can reach the API); otherwise they
//!   are refused with 403, so a server open to the network never takes anonymous writes.
//! - **Reads**: with `server.protect_reads = true`, every request under `/api/v1` except
//!   `/api/v1/openapi.json`, and `/metrics`, need the token too (401 with
//!   `WWW-Authenticate: Bearer`). `/healthz`, `/readyz` and the dashboards' assets stay open.
//!
//! Every refusal is counted in `tracebudget_api_requests_refused_total{reason}`. All of it reads
//! the config in force on every request, so a reload that changes the token or `allowed_hosts`
//! applies to the next request.

use std::net::IpAddr;

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::uri::{Authority, Scheme};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use slis::config::Secret;

use super::error::ApiError;
use super::refusal::Refusal;
use super::state::AppState;
use crate::app::config::ServerConfig;

/// Refuses a write that is not allowed (counted).
pub fn authorize_write(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let config = state.config();
    let (refusal, denied) = match config.server.api_token.as_ref() {
        Some(token) => match check_token(headers, Some(token)) {
            Ok(()) => return Ok(()),
            Err(denied) => (Refusal::Unauthorized, denied),
        },
        None if config.server.listen.ip().is_loopback() => return Ok(()),
        None => (
            Refusal::WritesDisabled,
            ApiError::forbidden("writes are disabled: set server.api_token"),
        ),
    };
    state.guard.count(refusal);
    Err(denied)
}

/// A route that takes a JSON body: 415 (counted) unless `Content-Type` is `application/json`.
/// (The middleware refuses any other type on every write; this also refuses none.)
pub fn require_json(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(header::CONTENT_TYPE) {
        Some(v) if is_json(v) => Ok(()),
        other => {
            state.guard.count(Refusal::ContentType);
            Err(content_type_refused(other))
        }
    }
}

/// Whether `path` is a read that `protect_reads` guards.
pub fn is_protected(path: &str) -> bool {
    path == "/metrics" || (path.starts_with("/api/v1/") && path != "/api/v1/openapi.json")
}

/// Checks the bearer token of a request; no token configured allows it.
pub fn check_token(headers: &HeaderMap, token: Option<&Secret>) -> Result<(), ApiError> {
    let Some(want) = token else { return Ok(()) };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // `matches` compares every byte whatever the first difference, so timing tells nothing.
    if got.is_some_and(|g| want.matches(g.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "this endpoint needs Authorization: Bearer <api_token>",
        ))
    }
}

/// Middleware, before every route: the `Host` check (without `protect_reads`), the `Origin` and
/// `Content-Type` of writes, and the token of guarded reads. See the module documentation.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = state.config();
    let server = &config.server;
    if let Some((refusal, denied)) = refuse(server, &request) {
        state.guard.count(refusal);
        return denied.into_response();
    }
    if server.protect_reads && is_protected(request.uri().path()) {
        // Config validation makes `protect_reads` need a token; without one nothing gets in.
        let allowed = match server.api_token.as_ref() {
            Some(token) => check_token(request.headers(), Some(token)),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "server.protect_reads is set without server.api_token",
            )),
        };
        if let Err(denied) = allowed {
            state.guard.count(Refusal::Unauthorized);
            return denied.into_response();
        }
    }
    next.run(request).await
}

/// The `Host`, `Origin` and `Content-Type` rules: why a request is refused, and the answer.
fn refuse(server: &ServerConfig, request: &Request) -> Option<(Refusal, ApiError)> {
    let headers = request.headers();
    let authority = request.uri().authority().map(Authority::as_str);
    let host_header = headers.get(header::HOST);
    if !server.protect_reads {
        let names = authority
            .map(|a| a.as_bytes())
            .into_iter()
            .chain(host_header.map(HeaderValue::as_bytes));
        for name in names {
            if !host_allowed(name, server) {
                let message = format!(
                    "host {:?} is not one this server answers to: localhost, an IP address, the host of server.external_url or a name in server.allowed_hosts",
                    String::from_utf8_lossy(name)
                );
                return Some((Refusal::Host, ApiError::forbidden(message)));
            }
        }
    }
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return None;
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        // The request's own authority: HTTP/2's, else the `Host` header.
        let own = authority.or_else(|| host_header.and_then(|h| h.to_str().ok()));
        if !own_origin(origin.as_bytes(), own, server) {
            let message = format!(
                "origin {:?} is not this server's own: a write from another site is refused",
                String::from_utf8_lossy(origin.as_bytes())
            );
            return Some((Refusal::Origin, ApiError::forbidden(message)));
        }
    }
    let content_type = headers.get(header::CONTENT_TYPE);
    // A body announces itself in the head (HTTP/1), or has a known length (in-process bodies).
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
        || request.body().size_hint().exact().is_some_and(|n| n > 0);
    match content_type {
        Some(v) if is_json(v) => None,
        None if !has_body => None,
        other => Some((Refusal::ContentType, content_type_refused(other))),
    }
}

fn content_type_refused(got: Option<&HeaderValue>) -> ApiError {
    let message = match got {
        Some(v) => format!(
            "content type {:?} is refused: writes take application/json",
            String::from_utf8_lossy(v.as_bytes())
        ),
        None => "content type missing: writes take application/json".to_owned(),
    };
    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
}

/// `application/json`, with any parameters (`; charset=utf-8`).
fn is_json(v: &HeaderValue) -> bool {
    let essence = v.as_bytes().split(|&b| b == b';').next().unwrap_or_default();
    essence.trim_ascii().eq_ignore_ascii_case(b"application/json")
}

/// A host name without its port, brackets or one trailing dot, lowercase; `None` when `name`
/// is not an authority (or carries user info).
fn host_of(name: &[u8]) -> Option<(String, Option<u16>)> {
    let text = std::str::from_utf8(name).ok()?;
    if text.contains('@') {
        return None;
    }
    let a: Authority = text.parse().ok()?;
    let host = a.host().trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host);
    Some((host.to_ascii_lowercase(), a.port_u16()))
}

fn named(host: &str, server: &ServerConfig) -> bool {
    server.allowed_hosts.iter().any(|n| n.eq_ignore_ascii_case(host))
}

fn external(server: &ServerConfig) -> Option<(String, String, u16)> {
    let uri: Uri = server.external_url.as_deref()?.parse().ok()?;
    origin_parts(&uri)
}

/// Scheme, lowercase host and port (the scheme's default when not given) of an http(s) URI.
fn origin_parts(uri: &Uri) -> Option<(String, String, u16)> {
    let scheme = uri.scheme()?;
    let default = if *scheme == Scheme::HTTPS {
        443
    } else if *scheme == Scheme::HTTP {
        80
    } else {
        return None;
    };
    let (host, port) = host_of(uri.authority()?.as_str().as_bytes())?;
    Some((scheme.as_str().to_owned(), host, port.unwrap_or(default)))
}

/// Whether `Host` (or an authority) names a host this server answers to.
fn host_allowed(name: &[u8], server: &ServerConfig) -> bool {
    let Some((host, _)) = host_of(name) else {
        return false;
    };
    host.parse::<IpAddr>().is_ok()
        || host == "localhost"
        || named(&host, server)
        || external(server).is_some_and(|(_, h, _)| h == host)
}

/// Whether an `Origin` is this server's own: the host and port the request was sent to (`own`,
/// the port defaulting to the origin scheme's), the origin of `external_url`, or a name in
/// `allowed_hosts`. `null` and anything but an http(s) origin are not.
fn own_origin(origin: &[u8], own: Option<&str>, server: &ServerConfig) -> bool {
    let Some(uri) = std::str::from_utf8(origin).ok().and_then(|o| o.parse::<Uri>().ok()) else {
        return false;
    };
    let Some((scheme, host, port)) = origin_parts(&uri) else {
        return false;
    };
    let sent_to = own.and_then(|o| host_of(o.as_bytes())).is_some_and(|(h, p)| {
        let default = if scheme == "https" { 443 } else { 80 };
        h == host && p.unwrap_or(default) == port
    });
    sent_to || named(&host, server) || external(server).is_some_and(|e| e == (scheme, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(allowed: &[&str], external_url: Option<&str>) -> ServerConfig {
        ServerConfig {
            allowed_hosts: allowed.iter().map(|s| (*s).to_owned()).collect(),
            external_url: external_url.map(str::to_owned),
            ..ServerConfig::default()
        }
    }

    /// Issue 18: which `Host` values are served without `protect_reads`.
    #[test]
    fn hosts_this_server_answers_to() {
        let s = server(&["slo.example.com"], Some("https://tb.example.org:8443/base"));
        let cases = [
            ("127.0.0.1:8080", true),
            ("127.0.0.1", true),
            ("localhost:8080", true),
            ("LOCALHOST:18080", true),
            ("localhost.:8080", true),
            ("[::1]:8080", true),
            ("10.1.2.3:9000", true),
            ("slo.example.com", true),
            ("SLO.Example.Com:443", true),
            ("tb.example.org:8443", true),
            ("tb.example.org", true),
            ("evil.example", false),
            ("evil.example:8080", false),
            ("localhost.evil.example", false),
            ("127.0.0.1.evil.example", false),
            ("slo.example.com.evil.example", false),
            ("user@127.0.0.1:8080", false),
            ("", false),
            ("a b", false),
        ];
        for (host, want) in cases {
            assert_eq!(host_allowed(host.as_bytes(), &s), want, "{host}");
        }
        assert!(!host_allowed(b"\xff", &s));
        assert!(!host_allowed(b"slo.example.com", &server(&[], None)));
    }

    /// Issue 18: which `Origin` values may write, for a request sent to `127.0.0.1:8080`.
    #[test]
    fn origins_that_may_write() {
        let s = server(&["slo.example.com"], Some("https://tb.example.org"));
        let cases = [
            ("http://127.0.0.1:8080", Some("127.0.0.1:8080"), true),
            ("http://localhost:8080", Some("localhost:8080"), true),
            ("http://[::1]:8080", Some("[::1]:8080"), true),
            ("https://localhost", Some("localhost"), true),
            ("https://localhost:443", Some("localhost"), true),
            ("http://localhost", Some("localhost:80"), true),
            ("https://slo.example.com", Some("127.0.0.1:8080"), true),
            ("http://slo.example.com:3000", Some("127.0.0.1:8080"), true),
            ("https://tb.example.org", Some("127.0.0.1:8080"), true),
            ("https://tb.example.org:443", None, true),
            ("http://tb.example.org", None, false),
            ("https://tb.example.org:8443", None, false),
            ("http://127.0.0.1:8081", Some("127.0.0.1:8080"), false),
            ("http://localhost:8080", Some("127.0.0.1:8080"), false),
            ("http://127.0.0.1", Some("127.0.0.1:8080"), false),
            ("http://evil.example", Some("127.0.0.1:8080"), false),
            ("http://evil.example:8080", Some("evil.example:8080"), true),
            ("null", Some("127.0.0.1:8080"), false),
            ("file://", Some("127.0.0.1:8080"), false),
            ("chrome-extension://abc", Some("127.0.0.1:8080"), false),
            ("http://127.0.0.1:8080", None, false),
            ("", Some("127.0.0.1:8080"), false),
        ];
        for (origin, own, want) in cases {
            assert_eq!(own_origin(origin.as_bytes(), own, &s), want, "{origin} sent to {own:?}");
        }
    }

    #[test]
    fn json_content_types() {
        for (v, want) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            (" application/json ;x=y", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("multipart/form-data; boundary=x", false),
            ("application/jsonx", false),
            ("text/plain; application/json", false),
        ] {
            assert_eq!(is_json(&HeaderValue::from_static(v)), want, "{v}");
        }
    }
}
