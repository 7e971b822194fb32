//! The web dashboards (`dashboards/web/`), embedded in the binary: `GET /` is the single page
//! (hash routes `#/` executive, `#/oncall`, `#/slo/<name>`), `GET /assets/<file>` its scripts,
//! style and icon, and `GET /slos/<name>` the permanent link notifications carry
//! (`tracebudget_alerting::notify::slo_url`), a redirect to the SLO's view. Nothing is fetched from anywhere else: the page works offline and its
//! Content-Security-Policy (`default-src 'self'`) forbids any other origin, inline script and
//! inline style.
//!
//! Caching: every response carries a strong `ETag` (SHA-256 of the content) with
//! `Cache-Control: no-cache`, so a browser revalidates and gets `304 Not Modified` until the
//! binary changes; a new binary is never hidden behind a stale cached script.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::{OriginalUri, Path};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// The policy every dashboard response carries: only this origin, no inline code, no plugins,
/// no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; \
                                           frame-ancestors 'none'; form-action 'self'";

/// One embedded file.
#[derive(Debug)]
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../../../dashboards/web/index.html"),
};

/// Everything under `/assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../dashboards/web/app.js"),
    },
    Asset {
        name: "chart.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../dashboards/web/chart.js"),
    },
    Asset {
        name: "format.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../dashboards/web/format.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../dashboards/web/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../../dashboards/web/favicon.svg"),
    },
];

/// `/` and `/assets/{file}`; they read no state, so any router can take them.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .route("/slos/{name}", get(slo_link))
}

/// `GET /slos/<name>` → `303 See Other` to `../#/slo/<name>`, the name kept as sent (still
/// percent-encoded). The target is relative, so a server behind a reverse proxy under a path
/// prefix (`external_url = "https://ops.example/slo"`) redirects within that prefix.
async fn slo_link(OriginalUri(uri): OriginalUri) -> Response {
    let name = uri.path().rsplit_once("/slos/").map_or("", |(_, name)| name);
    let mut r = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(&format!("../#/slo/{name}")) {
        Ok(location) => {
            r.headers_mut().insert(header::LOCATION, location);
            r
        }
        Err(_) => ApiError::bad_request(format!("not an SLO name: {name:?}")).into_response(),
    }
}

async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, 0, &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == file) {
        Some(i) => serve(&ASSETS[i], i + 1, &headers),
        None => ApiError::not_found(format!("no dashboard asset {file:?}")).into_response(),
    }
}

/// The ETag of asset `slot` (0 is the index), computed once.
fn etag(asset: &Asset, slot: usize) -> &'static str {
    static TAGS: OnceLock<Vec<OnceLock<String>>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| (0..=ASSETS.len()).map(|_| OnceLock::new()).collect());
    tags[slot].get_or_init(|| {
        let digest = Sha256::digest(asset.body);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    })
}

fn serve(asset: &Asset, slot: usize, headers: &HeaderMap) -> Response {
    let tag = etag(asset, slot);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(tag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVG_NS: &str = "http://www.w3.org/2000/svg";

    /// Every reference an asset makes is to this origin: no `http(s)://`, no protocol-relative
    /// `//host`, no `@import` of another site (the browser test checks the same on the page).
    #[test]
    fn no_asset_names_another_origin() {
        for a in std::iter::once(&INDEX).chain(ASSETS) {
            let text = std::str::from_utf8(a.body).expect("text asset");
            // The SVG namespace is an identifier, never fetched.
            let text = text.replace(SVG_NS, "");
            for bad in ["http://", "https://", "url(//", "src=\"//", "href=\"//", "@import"] {
                assert!(!text.contains(bad), "{} contains {bad:?}", a.name);
            }
        }
    }

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        use tower::ServiceExt;
        let mut request = axum::http::Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header_of(r: &Response, name: header::HeaderName) -> &str {
        r.headers().get(&name).map_or("", |v| v.to_str().unwrap())
    }

    async fn body_of(r: Response) -> String {
        use http_body_util::BodyExt;
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn pages_and_assets_with_their_types_policy_and_cache_headers() {
        let cases = [
            ("/", "text/html; charset=utf-8", "<!doctype html>"),
            (
                "/assets/app.js",
                "text/javascript; charset=utf-8",
                "// tracebudget dashboards",
            ),
            (
                "/assets/chart.js",
                "text/javascript; charset=utf-8",
                "// A small SVG line chart",
            ),
            (
                "/assets/format.js",
                "text/javascript; charset=utf-8",
                "// How the dashboards write",
            ),
            (
                "/assets/style.css",
                "text/css; charset=utf-8",
                "/* tracebudget dashboards.",
            ),
            ("/assets/favicon.svg", "image/svg+xml", "<svg"),
        ];
        for (path, content_type, starts) in cases {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header_of(&r, header::CONTENT_TYPE), content_type, "{path}");
            assert_eq!(header_of(&r, header::CACHE_CONTROL), "no-cache", "{path}");
            assert_eq!(
                header_of(&r, header::CONTENT_SECURITY_POLICY),
                CONTENT_SECURITY_POLICY,
                "{path}"
            );
            assert_eq!(header_of(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
            let tag = header_of(&r, header::ETAG).to_owned();
            assert_eq!(tag.len(), 34, "{path}: a quoted 128-bit hex tag, got {tag}");
            assert!(body_of(r).await.starts_with(starts), "{path}");

            // Revalidation: the same tag is not modified, another one gets the body again.
            let again = get(path, Some(&tag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
            assert_eq!(header_of(&again, header::ETAG), tag, "{path}");
            assert_eq!(body_of(again).await, "", "{path}");
            let changed = get(path, Some("\"0000\"")).await;
            assert_eq!(changed.status(), StatusCode::OK, "{path}");
        }
    }

    /// A notification's link (`/slos/<name>`, issue 18) leads to the SLO's view, the name as
    /// encoded, relative so that a path prefix in front of the server is kept (the browser test
    /// follows it).
    #[tokio::test]
    async fn a_notifications_slo_link_redirects_to_the_view() {
        for (path, location) in [
            ("/slos/checkout-latency", "../#/slo/checkout-latency"),
            ("/slos/a%20b%2Fc%3F", "../#/slo/a%20b%2Fc%3F"),
        ] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
            assert_eq!(header_of(&r, header::LOCATION), location, "{path}");
        }
    }

    #[tokio::test]
    async fn an_unknown_asset_is_a_json_404() {
        let r = get("/assets/jquery.js", None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(header_of(&r, header::CONTENT_TYPE), "application/json");
        assert_eq!(body_of(r).await, r#"{"error":"no dashboard asset \"jquery.js\""}"#);
    }

    #[test]
    fn every_asset_the_page_loads_is_served() {
        let index = std::str::from_utf8(INDEX.body).unwrap();
        for piece in index.split("/assets/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html loads {name}, not embedded"
            );
        }
        let app = std::str::from_utf8(ASSETS[0].body).unwrap();
        for piece in app.split("from \"./").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "app.js imports {name}, not embedded"
            );
        }
    }
}
