//! Issue 18: no cross-site write and no DNS-rebinding read in any configuration (`Origin`,
//! `Content-Type` and `Host` rules of `http::auth`), and silences bounded; every refusal counted.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::super::testing::{Reply, TestApp};
use super::{CONFIG, SILENCE, TOKEN, documented_gets, now, schema};

fn no_token() -> String {
    CONFIG.replace("api_token = \"tok-API-7f3e\"\n", "")
}

/// The silence a hostile page tries to create: every page of every SLO muted for a year.
const MUTE_ALL: &str = r#"{"matchers": ["slo =~ .*"], "duration": "8760h", "created_by": "evil", "comment": "muted"}"#;

/// Sends exactly these headers and checks the reply against the OpenAPI document.
async fn send(t: &TestApp, method: Method, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let reply = t.send(method.clone(), path, headers, body).await;
    schema::check(&schema::doc(), &method, path, &reply);
    reply
}

/// `tracebudget_api_requests_refused_total` by reason, as `/metrics` shows it (with the token,
/// which `protect_reads` needs).
async fn refused(t: &TestApp) -> Vec<(String, u64)> {
    let r = t.request(Method::GET, "/metrics", Some(TOKEN), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let prefix = "tracebudget_api_requests_refused_total{reason=\"";
    let mut v: Vec<(String, u64)> = r
        .text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|l| {
            let (reason, n) = l.split_once("\"} ").unwrap();
            (reason.to_owned(), n.parse().unwrap())
        })
        .collect();
    v.sort();
    v
}

/// Every reason at 0 but those given.
fn counts(nonzero: &[(&str, u64)]) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = [
        "content_type",
        "host",
        "origin",
        "silence_limit",
        "unauthorized",
        "writes_disabled",
    ]
    .iter()
    .map(|r| {
        let n = nonzero.iter().find(|(x, _)| x == r).map_or(0, |(_, n)| *n);
        ((*r).to_owned(), n)
    })
    .collect();
    v.sort();
    v
}

async fn silences(t: &TestApp) -> Value {
    let r = t.request(Method::GET, "/api/v1/silences", Some(TOKEN), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["silences"].clone()
}

fn origin_error(origin: &str) -> Value {
    json!({"error": format!("origin {origin:?} is not this server's own: a write from another site is refused")})
}

/// A foreign `Origin` is refused on every write, whatever the config, the token, the body or
/// the content type: nothing is created, expired or reloaded.
#[tokio::test]
async fn cross_site_writes_are_refused_in_every_configuration() {
    let bearer = format!("Bearer {TOKEN}");
    let configs = [
        ("no token, loopback", no_token()),
        (
            "no token, all interfaces",
            no_token().replace("127.0.0.1:8080", "0.0.0.0:8080"),
        ),
        ("token", CONFIG.to_owned()),
        (
            "token and protect_reads",
            CONFIG.replace("[server]\n", "[server]\nprotect_reads = true\n"),
        ),
    ];
    for (what, config) in configs {
        let t = TestApp::new(&config, now).await;
        let host = ("host", "127.0.0.1:8080");
        let auth = ("authorization", bearer.as_str());
        let writes = [
            // fetch(…, {method: "POST", mode: "no-cors", body}) and a text/plain form.
            (
                Method::POST,
                "/api/v1/silences",
                "http://evil.example",
                vec![host, ("content-type", "text/plain;charset=UTF-8")],
                Some(MUTE_ALL),
            ),
            // JSON with the right token still comes from another site.
            (
                Method::POST,
                "/api/v1/silences",
                "http://evil.example",
                vec![host, auth, ("content-type", "application/json")],
                Some(MUTE_ALL),
            ),
            (
                Method::POST,
                "/api/v1/config/reload",
                "http://evil.example",
                vec![host, ("content-type", "application/x-www-form-urlencoded")],
                Some("a=b"),
            ),
            (
                Method::POST,
                "/api/v1/config/reload",
                "http://evil.example",
                vec![host, auth],
                None,
            ),
            // A sandboxed frame, a redirect or `Referrer-Policy: no-referrer` send `null`.
            (Method::DELETE, "/api/v1/silences/abc", "null", vec![host, auth], None),
            // Another port of the same host is another origin.
            (
                Method::POST,
                "/api/v1/config/reload",
                "http://127.0.0.1:8081",
                vec![host, auth],
                None,
            ),
            // A CORS preflight.
            (
                Method::OPTIONS,
                "/api/v1/silences",
                "http://evil.example",
                vec![host, ("access-control-request-method", "POST")],
                None,
            ),
        ];
        let n = writes.len() as u64;
        for (method, path, origin, headers, body) in writes {
            let mut headers = headers;
            headers.push(("origin", origin));
            // The document describes no OPTIONS (a preflight answers as any write would).
            let r = if method == Method::OPTIONS {
                t.send(method.clone(), path, &headers, body).await
            } else {
                send(&t, method.clone(), path, &headers, body).await
            };
            assert_eq!(
                (r.status, &r.body),
                (StatusCode::FORBIDDEN, &origin_error(origin)),
                "{what}: {method} {path} from {origin}"
            );
        }
        assert_eq!(silences(&t).await, json!([]), "{what}");
        assert_eq!(t.state.reloads.reloads.get_or_create(&outcome("applied")).get(), 0);
        assert_eq!(t.state.reloads.reloads.get_or_create(&outcome("unchanged")).get(), 0);
        assert_eq!(refused(&t).await, counts(&[("origin", n)]), "{what}");
    }
}

fn outcome(outcome: &'static str) -> crate::app::reload::OutcomeLabels {
    crate::app::reload::OutcomeLabels { outcome }
}

/// What the dashboards send (same origin, JSON, `Origin` set by the browser) and what the CLI
/// and curl send (no `Origin`) still write; a body that is not JSON does not.
#[tokio::test]
async fn writes_take_json_only_and_the_servers_own_origin() {
    let t = TestApp::new(&no_token(), now).await;
    let json = ("content-type", "application/json");
    for (host, origin) in [
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("localhost:8080", "http://localhost:8080"),
        ("[::1]:8080", "http://[::1]:8080"),
    ] {
        let r = send(
            &t,
            Method::POST,
            "/api/v1/silences",
            &[("host", host), ("origin", origin), json],
            Some(SILENCE),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{origin}: {}", r.text);
        let id = r.body["id"].as_str().unwrap();
        let r = send(
            &t,
            Method::DELETE,
            &format!("/api/v1/silences/{id}"),
            &[("host", host), ("origin", origin)],
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{origin}: {}", r.text);
    }
    // The CLI: JSON, no Origin; `charset` is fine.
    let r = send(
        &t,
        Method::POST,
        "/api/v1/silences",
        &[("content-type", "application/json; charset=utf-8")],
        Some(SILENCE),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // curl -X POST …/reload: no body, no type.
    let r = send(&t, Method::POST, "/api/v1/config/reload", &[], None).await;
    assert_eq!(
        (r.status, &r.body["changed"]),
        (StatusCode::OK, &json!(false)),
        "{}",
        r.text
    );

    let refused_as =
        |ty: &str| json!({"error": format!("content type {ty:?} is refused: writes take application/json")});
    let cases = [
        (
            "/api/v1/silences",
            vec![("content-type", "text/plain")],
            Some(MUTE_ALL),
            refused_as("text/plain"),
        ),
        (
            "/api/v1/silences",
            vec![("content-type", "application/x-www-form-urlencoded")],
            Some("matchers=slo"),
            refused_as("application/x-www-form-urlencoded"),
        ),
        (
            "/api/v1/silences",
            vec![("content-type", "multipart/form-data; boundary=x")],
            Some("--x--"),
            refused_as("multipart/form-data; boundary=x"),
        ),
        (
            "/api/v1/silences",
            vec![],
            Some(MUTE_ALL),
            json!({"error": "content type missing: writes take application/json"}),
        ),
        (
            "/api/v1/silences",
            vec![],
            None,
            json!({"error": "content type missing: writes take application/json"}),
        ),
        (
            "/api/v1/config/reload",
            vec![("content-type", "application/x-www-form-urlencoded")],
            Some("a=b"),
            refused_as("application/x-www-form-urlencoded"),
        ),
    ];
    let n = cases.len() as u64;
    for (path, headers, body, want) in cases {
        let r = send(&t, Method::POST, path, &headers, body).await;
        assert_eq!(
            (r.status, &r.body),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, &want),
            "{path} {headers:?}"
        );
    }
    let list = silences(&t).await;
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.iter().filter(|s| **s == "active").count(), 1, "{states:?}");
    assert_eq!(states.len(), 4);
    assert_eq!(t.state.reloads.reloads.get_or_create(&outcome("unchanged")).get(), 1);
    assert_eq!(refused(&t).await, counts(&[("content_type", n)]));
}

fn host_error(host: &str) -> Value {
    json!({"error": format!(
        "host {host:?} is not one this server answers to: localhost, an IP address, the host of server.external_url or a name in server.allowed_hosts"
    )})
}

/// Without `protect_reads` a request must name this server: a DNS-rebinding page (its own
/// name resolved to 127.0.0.1) reads nothing, not even `/metrics` or the dashboards.
#[tokio::test]
async fn without_protect_reads_only_this_servers_names_are_served() {
    let config = no_token().replace(
        "[server]\n",
        "[server]\nallowed_hosts = [\"slo.example.com\"]\nexternal_url = \"https://tb.example.org/slo\"\n",
    );
    let t = TestApp::new(&config, now).await;
    let mut paths = documented_gets();
    paths.extend(["/".to_owned(), "/assets/app.js".to_owned()]);
    for path in &paths {
        for host in ["evil.example:8080", "evil.example", "localhost.evil.example:8080"] {
            let r = t.send(Method::GET, path, &[("host", host)], None).await;
            assert_eq!(
                (r.status, &r.body),
                (StatusCode::FORBIDDEN, &host_error(host)),
                "{path} {host}"
            );
            if path.starts_with("/api/") || path == "/metrics" {
                schema::check(&schema::doc(), &Method::GET, path, &r);
            }
        }
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "192.0.2.7:18080",
            "slo.example.com",
            "SLO.example.com:443",
            "tb.example.org",
        ] {
            let r = t.send(Method::GET, path, &[("host", host)], None).await;
            assert_eq!(r.status, StatusCode::OK, "{path} {host}: {}", r.text);
        }
    }
    // HTTP/2's authority (or an absolute-form target) is checked as `Host` is.
    let r = t
        .send(Method::GET, "http://evil.example:8080/api/v1/slos", &[], None)
        .await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::FORBIDDEN, &host_error("evil.example:8080"))
    );
    // A write to a rebound name is refused before anything else.
    let r = send(
        &t,
        Method::POST,
        "/api/v1/silences",
        &[
            ("host", "evil.example:8080"),
            ("origin", "http://evil.example:8080"),
            ("content-type", "application/json"),
        ],
        Some(MUTE_ALL),
    )
    .await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::FORBIDDEN, &host_error("evil.example:8080"))
    );
    assert_eq!(silences(&t).await, json!([]));
    let n = (paths.len() * 3 + 2) as u64;
    assert_eq!(refused(&t).await, counts(&[("host", n)]));

    // `allowed_hosts` is read per request: a reload that adds a name applies at once.
    let next = crate::app::config::parse(
        "test.toml",
        &(config.replace("\"slo.example.com\"", "\"slo.example.com\", \"evil.example\"")
            + &format!("\n[storage]\nurl = \"{}\"\n", t.state.config().storage.url.0)),
    )
    .unwrap();
    {
        let _pipeline = t.state.pipeline.lock().unwrap();
        t.state.live.set(std::sync::Arc::new(next));
    }
    let r = t
        .send(Method::GET, "/api/v1/slos", &[("host", "evil.example:8080")], None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// With a token that reads need (`protect_reads`), the token guards the API: any `Host` is
/// served to who has it, and nobody else reads. With a token for writes only, reads are open,
/// so `Host` is checked.
#[tokio::test]
async fn the_host_is_checked_unless_a_token_guards_reads() {
    let guarded = TestApp::new(&CONFIG.replace("[server]\n", "[server]\nprotect_reads = true\n"), now).await;
    let bearer = format!("Bearer {TOKEN}");
    let evil = ("host", "evil.example:8080");
    let r = guarded
        .send(Method::GET, "/api/v1/slos", &[evil, ("authorization", &bearer)], None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = guarded.send(Method::GET, "/api/v1/slos", &[evil], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused(&guarded).await, counts(&[("unauthorized", 1)]));

    let writes_only = TestApp::new(CONFIG, now).await;
    let r = writes_only.send(Method::GET, "/api/v1/slos", &[evil], None).await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::FORBIDDEN, &host_error("evil.example:8080"))
    );
    let r = writes_only
        .send(Method::GET, "/api/v1/slos", &[evil, ("authorization", &bearer)], None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(refused(&writes_only).await, counts(&[("host", 2)]));
}

/// A silence is bounded (matchers, each matcher, `created_by`, `comment`, in bytes); each limit
/// is named in the 400, counted as `silence_limit`; a silence at every limit is stored.
#[tokio::test]
async fn silences_are_bounded_with_the_limit_named() {
    let t = TestApp::new(&no_token(), now).await;
    let body = |matchers: Vec<String>, created_by: &str, comment: &str| {
        json!({"matchers": matchers, "duration": "1h", "created_by": created_by, "comment": comment}).to_string()
    };
    let matchers = |n: usize| (0..n).map(|i| format!("slo = s{i}")).collect::<Vec<_>>();
    // 1,024 bytes: `slo = ` and 1,018 more.
    let long = |bytes: usize| format!("slo = {}", "x".repeat(bytes - 6));
    let cases = [
        (
            body(matchers(100_000), "ana", "x"),
            "matchers: 100000 given, at most 64",
        ),
        (body(matchers(65), "ana", "x"), "matchers: 65 given, at most 64"),
        (
            body(vec!["slo = a".into(), long(1_025)], "ana", "x"),
            "matchers[1] is 1025 bytes, at most 1024",
        ),
        (
            body(matchers(1), &"é".repeat(129), "x"),
            "created_by is 258 bytes, at most 256",
        ),
        (
            body(matchers(1), "ana", &"x".repeat(4_097)),
            "comment is 4097 bytes, at most 4096",
        ),
    ];
    let n = cases.len() as u64;
    for (body, want) in cases {
        let r = super::call(&t, Method::POST, "/api/v1/silences", None, Some(&body)).await;
        assert_eq!(
            (r.status, &r.body),
            (StatusCode::BAD_REQUEST, &json!({"error": want})),
            "{want}"
        );
    }
    assert_eq!(silences(&t).await, json!([]));
    let mut at_limits = matchers(63);
    at_limits.push(long(1_024));
    let r = super::call(
        &t,
        Method::POST,
        "/api/v1/silences",
        None,
        Some(&body(at_limits, &"é".repeat(128), &"x".repeat(4_096))),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["matchers"].as_array().unwrap().len(), 64);
    assert_eq!(refused(&t).await, counts(&[("silence_limit", n)]));
}
