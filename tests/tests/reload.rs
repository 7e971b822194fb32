//! Config reload through the real binary (issue #6): `POST /api/v1/config/reload` and SIGHUP.
//! An invalid file or a restart-only change is refused with its errors and the running config
//! keeps working; a valid one applies at once, keeps what kept SLOs counted, counts new SLOs from
//! then on, and survives a restart.

use std::path::Path;
use std::time::Duration;

use tracebudget_tests::{
    Json, Metrics, Server, TempDir, example_config_with, free_addrs, http_request, loadgen, wait_for,
};

const TOKEN: &str = "reload-test-token";

fn reload(server: &Server, token: Option<&str>) -> (u16, Json) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
    let r = http_request(
        server.addr(),
        "POST",
        "/api/v1/config/reload",
        &headers,
        "",
        Duration::from_secs(10),
    )
    .expect("POST /api/v1/config/reload");
    let json = Json::parse(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body));
    (r.status, json)
}

fn send(config: &Path, http: std::net::SocketAddr, traces: u32, seed: u32) -> Json {
    let sent = loadgen(
        &[
            "--config",
            config.to_str().unwrap(),
            "--endpoint",
            &format!("http://{http}"),
            "--traces",
            &traces.to_string(),
            "--rate",
            "0",
            "--error-rate",
            "0.1",
            "--seed",
            &seed.to_string(),
        ],
        Duration::from_secs(120),
    );
    assert_eq!(sent.num(&["accepted", "traces"]), f64::from(traces));
    sent
}

fn closed(server: &mut Server, n: u32) -> Metrics {
    wait_for(server, Duration::from_secs(30), |m| {
        m.sum("tracebudget_traces_closed_total", &[]) >= f64::from(n)
    })
}

fn events(m: &Metrics, slo: &str) -> Option<(f64, f64)> {
    let labels = [("slo", slo)];
    Some((
        m.get("tracebudget_slo_events_total", &labels)?,
        m.get("tracebudget_slo_bad_events_total", &labels)?,
    ))
}

fn slo_names(server: &Server) -> Vec<String> {
    let r = server.get("/api/v1/slos").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let json = Json::parse(&r.body).unwrap();
    json.get("slos")
        .and_then(Json::as_array)
        .unwrap()
        .iter()
        .map(|s| s.get("name").and_then(Json::as_str).unwrap().to_owned())
        .collect()
}

fn messages(json: &Json) -> Vec<String> {
    json.get("errors")
        .and_then(Json::as_array)
        .unwrap()
        .iter()
        .map(|e| {
            let at = |k| {
                e.get(k)
                    .and_then(Json::as_f64)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            };
            format!(
                "{}:{}: {}",
                at("line"),
                at("column"),
                e.get("message").and_then(Json::as_str).unwrap()
            )
        })
        .collect()
}

#[test]
fn reload_refuses_bad_files_applies_good_ones_and_keeps_the_counts() {
    let dir = TempDir::new("reload");
    let ports: [_; 4] = free_addrs(4).try_into().unwrap();
    let db = format!("sqlite://{}", dir.path().join("tracebudget.db").display());
    let token = format!("api_token = \"{TOKEN}\"");
    let config = example_config_with(&dir, ports, &db, &[("# api_token = \"…\"", &token)]);
    let original = std::fs::read_to_string(&config).unwrap();
    let mut server = Server::start(&config, ports[0]);
    let first = send(&config, ports[2], 600, 5);
    let before = closed(&mut server, 600);
    let checkout = first.num(&["journeys", "checkout", "traces"]);
    let checkout_errors = first.num(&["journeys", "checkout", "errors"]);
    assert_eq!(
        events(&before, "checkout-availability"),
        Some((checkout, checkout_errors))
    );
    let slos_before = slo_names(&server);

    // No token, a wrong token: 401, nothing read.
    assert_eq!(reload(&server, None).0, 401);
    assert_eq!(reload(&server, Some("wrong")).0, 401);

    // Unchanged file: nothing to do.
    let (status, r) = reload(&server, Some(TOKEN));
    assert_eq!(status, 200, "{r:?}");
    assert_eq!(r.get("changed"), Some(&Json::Bool(false)));

    // An invalid file: every error with its line and column; the old config stays in force.
    let broken = original
        .replace(
            "objective = 0.999\nperiod = \"28d\"",
            "objective = 1.5\nperiod = \"28d\"",
        )
        .replace(
            "[[slos]]\nname = \"search-latency\"",
            "[[slos]]\nname = \"search-latency\"\ncolour = \"red\"",
        );
    assert_ne!(broken, original);
    std::fs::write(&config, &broken).unwrap();
    let (status, r) = reload(&server, Some(TOKEN));
    assert_eq!(status, 400, "{r:?}");
    let errs = messages(&r);
    assert_eq!(errs.len(), 2, "{errs:?}");
    let line_of = |needle: &str| broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        errs[0].starts_with(&format!("{}:", line_of("objective = 1.5"))) && errs[0].contains("objective"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with(&format!("{}:1: unknown field `colour`", line_of("colour = "))),
        "{errs:?}"
    );
    assert!(
        r.get("error")
            .and_then(Json::as_str)
            .unwrap()
            .contains("stays in force")
    );
    assert_eq!(slo_names(&server), slos_before);

    // A restart-only change is refused too.
    std::fs::write(
        &config,
        original.replace("flush_interval = \"5s\"", "flush_interval = \"7s\""),
    )
    .unwrap();
    let (status, r) = reload(&server, Some(TOKEN));
    assert_eq!(status, 400, "{r:?}");
    assert_eq!(
        messages(&r),
        [":: [storage] changed: it applies only at a restart (tracebudget serve)"]
    );

    // A valid change: a stricter checkout objective, a new error SLO, search-latency gone.
    let changed = original
        .replace(
            "objective = 0.999\nperiod = \"28d\"",
            "objective = 0.9995\nperiod = \"28d\"",
        )
        .replace(
            "[[slos]]\nname = \"search-latency\"\ndescription = \"Search answers within 300 ms\"\njourney = \"search\"\nsli = \"latency\"\nthreshold = \"300ms\"\nobjective = 0.95\nperiod = \"7d\"\n",
            "[[slos]]\nname = \"checkout-errors-v2\"\njourney = \"checkout\"\nsli = \"error\"\nobjective = 0.99\nperiod = \"7d\"\n",
        );
    assert!(changed.contains("checkout-errors-v2") && !changed.contains("search-latency"));
    std::fs::write(&config, &changed).unwrap();
    let (status, r) = reload(&server, Some(TOKEN));
    assert_eq!(status, 200, "{r:?}\n{}", server.output_block());
    assert_eq!(r.get("changed"), Some(&Json::Bool(true)));
    let names = |k: &str| -> Vec<String> {
        r.get(k)
            .and_then(Json::as_array)
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("added_slos"), ["checkout-errors-v2"]);
    assert_eq!(names("removed_slos"), ["search-latency"]);

    let after = server.metrics();
    assert_eq!(
        events(&after, "checkout-availability"),
        Some((checkout, checkout_errors)),
        "kept SLO, kept counts"
    );
    assert_eq!(events(&after, "checkout-errors-v2"), Some((0.0, 0.0)));
    assert_eq!(events(&after, "search-latency"), None);
    for s in before.matching("tracebudget_slo_events_total", &[]) {
        let slo = s.labels.iter().find(|(k, _)| k.as_str() == "slo").unwrap().1.as_str();
        if slo != "search-latency" {
            assert_eq!(events(&after, slo), events(&before, slo), "{slo}");
        }
    }
    assert_eq!(
        after.get("tracebudget_config_reloads_total", &[("outcome", "applied")]),
        Some(1.0)
    );
    assert_eq!(
        after.get("tracebudget_config_reloads_total", &[("outcome", "invalid")]),
        Some(1.0)
    );
    assert_eq!(
        after.get("tracebudget_config_reloads_total", &[("outcome", "restart_required")]),
        Some(1.0)
    );
    assert_eq!(after.get("tracebudget_config_last_reload_successful", &[]), Some(1.0));
    let api = Json::parse(&server.get("/api/v1/slos").unwrap().body).unwrap();
    let checkout_slo = api
        .get("slos")
        .and_then(Json::as_array)
        .unwrap()
        .iter()
        .find(|s| s.get("name").and_then(Json::as_str) == Some("checkout-availability"))
        .unwrap();
    assert_eq!(checkout_slo.num(&["objective"]), 0.9995);

    // New traffic counts in the new SLO and on top of the kept ones.
    let second = send(&config, ports[2], 400, 6);
    let now = closed(&mut server, 1_000);
    let checkout2 = second.num(&["journeys", "checkout", "traces"]);
    let errors2 = second.num(&["journeys", "checkout", "errors"]);
    assert_eq!(events(&now, "checkout-errors-v2"), Some((checkout2, errors2)));
    assert_eq!(
        events(&now, "checkout-availability"),
        Some((checkout + checkout2, checkout_errors + errors2))
    );

    // SIGHUP reloads too: back to the original file. search-latency returns, empty (its history
    // went with the reload that removed it).
    std::fs::write(&config, &original).unwrap();
    server.signal("HUP");
    let m = wait_for(&mut server, Duration::from_secs(10), |m| {
        m.get("tracebudget_config_reloads_total", &[("outcome", "applied")]) == Some(2.0)
    });
    assert_eq!(slo_names(&server), slos_before);
    assert_eq!(events(&m, "checkout-errors-v2"), None);
    assert_eq!(events(&m, "search-latency"), Some((0.0, 0.0)));
    let kept = events(&m, "checkout-availability");
    assert_eq!(kept, Some((checkout + checkout2, checkout_errors + errors2)));

    // What the reloads applied is stored in the new layout: a restart gives back the same counts.
    let status = server.signal_and_wait("TERM", Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", server.output_block());
    let mut again = Server::start(&config, ports[0]);
    let restored = again.metrics();
    for s in m.matching("tracebudget_slo_events_total", &[]) {
        let slo = s.labels.iter().find(|(k, _)| k.as_str() == "slo").unwrap().1.as_str();
        assert_eq!(events(&restored, slo), events(&m, slo), "{slo} after the restart");
    }
}
