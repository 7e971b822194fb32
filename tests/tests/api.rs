//! The REST API of the real binary (issue 6): with `protect_reads`, every GET route answers
//! with the token and refuses without it, the numbers agree with `/metrics` after real OTLP
//! traffic, the config comes back without its token, and unknown SLOs are a JSON 404.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracebudget_tests::{
    HttpResponse, Json, Metrics, Server, TempDir, example_config_with, free_addrs, http_request, loadgen,
};

const TOKEN: &str = "e2e-7d1c-token";

fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http_request(addr, "GET", path, &headers, None, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `GET path` with the token: 200 and a JSON body.
fn json(server: &Server, path: &str) -> Json {
    let r = get(server.addr(), path, Some(TOKEN));
    assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.body, server.output_block());
    assert_eq!(r.header("content-type"), Some("application/json"), "GET {path}");
    Json::parse(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", r.body))
}

fn metrics(server: &Server) -> Metrics {
    let r = get(server.addr(), "/metrics", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.body);
    Metrics::parse(&r.body).unwrap()
}

fn array<'a>(v: &'a Json, key: &str) -> &'a [Json] {
    v.get(key)
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("no array {key} in {v:?}"))
}

#[test]
fn every_get_route_answers_with_the_token_and_agrees_with_metrics() {
    let dir = TempDir::new("api");
    let ports: [SocketAddr; 4] = free_addrs(4).try_into().unwrap();
    let db = format!("sqlite://{}", dir.path().join("tracebudget.db").display());
    let config = example_config_with(
        &dir,
        ports,
        &db,
        &[(
            "# api_token = \"…\"",
            &format!("api_token = \"{TOKEN}\"\nprotect_reads = true"),
        )],
    );
    let mut server = Server::start(&config, ports[0]);
    let sent = loadgen(
        &[
            "--config",
            config.to_str().unwrap(),
            "--endpoint",
            &format!("http://{}", ports[2]),
            "--traces",
            "300",
            "--rate",
            "0",
            "--error-rate",
            "0.1",
            "--seed",
            "6",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(sent.num(&["accepted", "traces"]), 300.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let m = loop {
        server.assert_running();
        let m = metrics(&server);
        if m.sum("tracebudget_traces_closed_total", &[]) >= 300.0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(m.sum("tracebudget_traces_closed_total", &[]), 300.0);

    // Without the token: 401, JSON, WWW-Authenticate; health and the document stay open.
    let denied = get(server.addr(), "/api/v1/slos", None);
    assert_eq!(denied.status, 401, "{}", denied.body);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        Json::parse(&denied.body).unwrap().get("error").and_then(Json::as_str),
        Some("this endpoint needs Authorization: Bearer <api_token>")
    );
    assert_eq!(get(server.addr(), "/metrics", None).status, 401);
    for open in ["/healthz", "/readyz", "/api/v1/openapi.json"] {
        assert_eq!(get(server.addr(), open, None).status, 200, "{open}");
    }
    let doc = Json::parse(&get(server.addr(), "/api/v1/openapi.json", None).body).unwrap();
    assert!(doc.at(&["paths", "/api/v1/slos/{name}/series", "get"]).is_some());

    // Every SLO's period counts are what /metrics counted (all traffic is seconds old).
    let slos = json(&server, "/api/v1/slos");
    let slos = array(&slos, "slos");
    assert_eq!(slos.len(), 7);
    let mut events = 0.0;
    for slo in slos {
        let name = slo.get("name").and_then(Json::as_str).unwrap();
        let journey = slo.get("journey").and_then(Json::as_str).unwrap();
        let labels = [("slo", name), ("journey", journey)];
        assert_eq!(
            slo.num(&["period", "events"]),
            m.get("tracebudget_slo_events_total", &labels).unwrap(),
            "{name}"
        );
        assert_eq!(
            slo.num(&["period", "bad_events"]),
            m.get("tracebudget_slo_bad_events_total", &labels).unwrap(),
            "{name}"
        );
        events += slo.num(&["period", "events"]);
        let status = slo.get("status").and_then(Json::as_str).unwrap();
        assert!(["critical", "warning", "no_data", "ok"].contains(&status), "{status}");

        let one = json(&server, &format!("/api/v1/slos/{name}"));
        assert_eq!(one.num(&["period", "events"]), slo.num(&["period", "events"]));
        // The series' points tile the last hour: they sum to the period's events.
        let series = json(&server, &format!("/api/v1/slos/{name}/series?range=1h&step=5m"));
        let points = array(&series, "points");
        assert_eq!(points.len(), 12, "{name}");
        let sum: f64 = points.iter().map(|p| p.num(&["events"])).sum();
        assert_eq!(sum, slo.num(&["period", "events"]), "{name}");
    }
    assert!(events >= 300.0, "{events}");

    let journeys = json(&server, "/api/v1/journeys");
    let journeys = array(&journeys, "journeys");
    assert_eq!(journeys.len(), 3);
    let mut roots = 0.0;
    for j in journeys {
        let name = j.get("name").and_then(Json::as_str).unwrap();
        assert_eq!(
            j.num(&["roots"]),
            m.get("tracebudget_root_spans_total", &[("journey", name)]).unwrap(),
            "{name}"
        );
        roots += j.num(&["roots"]);
        if j.num(&["roots"]) > 0.0 {
            assert_eq!(j.num(&["latency", "count"]), j.num(&["roots"]), "{name}");
        }
    }
    assert_eq!(roots, 300.0);

    let shown = json(&server, "/api/v1/config");
    let text = shown.get("text").and_then(Json::as_str).unwrap();
    assert!(text.contains("api_token = \"<redacted>\""), "{text}");
    assert!(!get(server.addr(), "/api/v1/config", Some(TOKEN)).body.contains(TOKEN));
    assert_eq!(shown.get("file").and_then(Json::as_str), Some(config.to_str().unwrap()));

    for (path, key) in [
        ("/api/v1/alerts", "alerts"),
        ("/api/v1/alerts/history?since=1h", "events"),
        ("/api/v1/notifications", "notifications"),
        ("/api/v1/silences", "silences"),
    ] {
        array(&json(&server, path), key);
    }

    let missing = get(server.addr(), "/api/v1/slos/nope", Some(TOKEN));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, r#"{"error":"unknown SLO \"nope\""}"#);
    server.assert_running();
}
