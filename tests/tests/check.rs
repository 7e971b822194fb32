//! `tracebudget check` on the example config and on one broken config per error class (issue #2).

use tracebudget_tests::{TempDir, repo_root, run};

#[test]
fn the_example_config_is_valid_and_summarised() {
    let example = repo_root().join("examples/tracebudget.toml");
    let out = run(&["check", example.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("valid — 3 journeys, 7 SLOs, 2 policies, 2 receivers, 1 report"),
        "{stdout}"
    );
    // What the config does with attribute values, and the redaction rules.
    assert!(
        stdout.contains("values kept or shown:   peer.service (attribute_allow_list)")
            && stdout.contains("redaction rules:        email, bearer_token"),
        "{stdout}"
    );
    // Budget in allowed bad events per million.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("checkout-availability") && l.trim_end().ends_with(" 1000")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("search-latency") && l.trim_end().ends_with(" 50000")),
        "{stdout}"
    );
    // A 30-day SLO at 99.5% under the Workbook table: 14.4 × 0.005 × 1h = 4m19.2s.
    assert!(
        stdout.contains("page    14.4×  long 1h        short 5m        fires 4m19.2s into an outage"),
        "{stdout}"
    );
    // The calendar-month 99.9% SLO: exactly the Workbook figures (51.84 s, 2m9.6s, 4m19.2s).
    let login = stdout
        .split("  login-availability —")
        .nth(1)
        .expect("login-availability windows");
    assert!(login.contains("fires 51.84s into an outage"), "{login}");
    assert!(login.contains("fires 2m9.6s into an outage"), "{login}");
    assert!(
        login.contains("ticket     1×  long 3d        short 6h        fires 4m19.2s into an outage"),
        "{login}"
    );
    // 28-day windows scale: 1h × 28/30 = 56m, 5m → 4m40s, 3d → 2d19h12m (issue 18: each window
    // named exactly, as its /metrics label is).
    assert!(stdout.contains("long 56m       short 4m40s"), "{stdout}");
    assert!(stdout.contains("long 2d19h12m  short 5h36m"), "{stdout}");
    assert!(
        stdout.contains("\"0 9 * * 1\" → sre-email, all SLOs; next "),
        "{stdout}"
    );
}

const BASE: &str = r#"
[[journeys]]
name = "checkout"
service = "frontend"
expected_services = ["frontend", "payment"]

[[slos]]
name = "checkout-availability"
journey = "checkout"
sli = "error"
objective = 0.999
period = "28d"

[[receivers]]
name = "pager"
webhook = { url = "http://127.0.0.1:9999/hook" }

[route]
receiver = "pager"
"#;

/// (case, config, the error's line:column, the expected message)
const BROKEN: &[(&str, &str, &str, &str)] = &[
    (
        "unknown built-in redaction rule",
        "[[journeys]]\nname = \"checkout\"\nservice = \"frontend\"\n\n[privacy]\nredact = [\"email\", \"phone\"]\n",
        "6:20",
        "unknown built-in redaction rule \"phone\", expected one of email, bearer_token, ipv4, credit_card (write your own under [[privacy.rules]])",
    ),
    (
        "invalid redaction pattern",
        "[[journeys]]\nname = \"checkout\"\nservice = \"frontend\"\n\n[[privacy.rules]]\nname = \"customer\"\npattern = \"(cust-[0-9]+\"\n",
        "7:11",
        "privacy.rules \"customer\": invalid pattern: unclosed group",
    ),
    (
        "unknown privacy key",
        "[[journeys]]\nname = \"checkout\"\nservice = \"frontend\"\n\n[privacy]\nallow_list = []\n",
        "6:1",
        "unknown field `allow_list`, expected one of `attribute_allow_list`, `redact`, `rules`",
    ),
    (
        "unknown key",
        "[[journeys]]\nname = \"checkout\"\nservice = \"frontend\"\nservise = \"x\"\n",
        "4:1",
        "unknown field `servise`",
    ),
    (
        "unknown section",
        "[[journeys]]\nname = \"checkout\"\nservice = \"frontend\"\n\n[alerts]\nx = 1\n",
        "5:2",
        "unknown section `alerts`, expected one of server, ingest, storage, cluster, alerting, journeys, slos, policies, receivers, route, inhibit_rules, reports, jetstream, trace_health",
    ),
    (
        "unknown journey",
        "[[journeys]]\nname = \"checkout\"\nservice = \"frontend\"\n\n[[slos]]\nname = \"s\"\njourney = \"chekout\"\nsli = \"error\"\nobjective = 0.99\nperiod = \"7d\"\n",
        "7:11",
        "unknown journey \"chekout\" (defined: checkout)",
    ),
    (
        "objective above 1",
        "[[journeys]]\nname = \"checkout\"\nservice = \"frontend\"\n\n[[slos]]\nname = \"s\"\njourney = \"checkout\"\nsli = \"error\"\nobjective = 99.9\nperiod = \"7d\"\n",
        "9:13",
        "objective 99.9 is outside (0, 1): write a ratio, e.g. 0.999 for 99.9%",
    ),
    (
        "objective zero",
        "[[journeys]]\nname = \"checkout\"\nservice = \"frontend\"\n\n[[slos]]\nname = \"s\"\njourney = \"checkout\"\nsli = \"error\"\nobjective = 0.0\nperiod = \"7d\"\n",
        "9:13",
        "objective 0 is outside (0, 1)",
    ),
    (
        "duplicate journey",
        "[[journeys]]\nname = \"checkout\"\nservice = \"a\"\n\n[[journeys]]\nname = \"checkout\"\nservice = \"b\"\n",
        "6:8",
        "duplicate journey name \"checkout\"",
    ),
    (
        "duplicate SLO",
        "[[journeys]]\nname = \"j\"\nservice = \"a\"\n\n[[slos]]\nname = \"s\"\njourney = \"j\"\nsli = \"error\"\nobjective = 0.99\nperiod = \"7d\"\n\n[[slos]]\nname = \"s\"\njourney = \"j\"\nsli = \"error\"\nobjective = 0.9\nperiod = \"7d\"\n",
        "13:8",
        "duplicate SLO name \"s\"",
    ),
    (
        "unparsable duration",
        "[ingest]\ntrace_idle = \"30 seconds\"\n",
        "2:14",
        "invalid duration \"30 seconds\": unknown unit \"seconds\", expected one of ns, us, ms, s, m, h, d, w",
    ),
    (
        "unparsable period",
        "[[journeys]]\nname = \"j\"\nservice = \"a\"\n\n[[slos]]\nname = \"s\"\njourney = \"j\"\nsli = \"error\"\nobjective = 0.99\nperiod = \"monthly\"\n",
        "10:10",
        "invalid duration \"monthly\": expected a number followed by a unit (ns, us, ms, s, m, h, d, w); a period is a duration such as \"28d\" or \"calendar_month\"",
    ),
    (
        "short window not shorter",
        "[[policies]]\nname = \"p\"\nwindows = [\n  { long = \"1h\", short = \"5m\", factor = 14.4, severity = \"page\" },\n  { long = \"30m\", short = \"1h\", factor = 6.0, severity = \"page\" },\n]\n",
        "5:27",
        "short window 1h is not shorter than its long window 30m",
    ),
    (
        "bad cron",
        "[[receivers]]\nname = \"mail\"\nemail = { to = [\"a@b.c\"], from = \"t@b.c\", smarthost = \"127.0.0.1:25\" }\n\n[route]\nreceiver = \"mail\"\n\n[[reports]]\nname = \"weekly\"\nschedule = \"0 9 * *\"\nreceiver = \"mail\"\n",
        "10:12",
        "invalid cron schedule \"0 9 * *\": expected 5 fields (minute hour day month weekday) or 6/7 with seconds, got 4",
    ),
    (
        "undefined receiver in route",
        "[[receivers]]\nname = \"pager\"\nwebhook = { url = \"http://127.0.0.1:9/h\" }\n\n[route]\nreceiver = \"pagr\"\n",
        "6:12",
        "unknown receiver \"pagr\" (defined: pager)",
    ),
    (
        "undefined receiver in report",
        "[[receivers]]\nname = \"pager\"\nwebhook = { url = \"http://127.0.0.1:9/h\" }\n\n[route]\nreceiver = \"pager\"\n\n[[reports]]\nname = \"r\"\nschedule = \"0 9 * * 1\"\nreceiver = \"mail\"\n",
        "11:12",
        "unknown receiver \"mail\" (defined: pager)",
    ),
    (
        "report to a receiver that cannot take reports (issue 5 item 8)",
        "[[receivers]]\nname = \"am\"\nalertmanager = { url = \"http://127.0.0.1:9093\" }\n\n[route]\nreceiver = \"am\"\n\n[[reports]]\nname = \"weekly\"\nschedule = \"0 9 * * 1\"\nreceiver = \"am\"\n",
        "11:12",
        "report \"weekly\": receiver \"am\" cannot take it: reports are not supported by alertmanager; use a webhook in format generic or slack, or email",
    ),
    (
        "report to a pagerduty webhook",
        "[[receivers]]\nname = \"pd\"\nwebhook = { url = \"https://events.pagerduty.com/v2/enqueue\", format = \"pagerduty\", routing_key = \"k\" }\n\n[route]\nreceiver = \"pd\"\n\n[[reports]]\nname = \"weekly\"\nschedule = \"0 9 * * 1\"\nreceiver = \"pd\"\n",
        "11:12",
        "report \"weekly\": receiver \"pd\" cannot take it: reports are not supported by webhook format pagerduty; use a webhook in format generic or slack, or email",
    ),
    (
        "undefined policy",
        "[[journeys]]\nname = \"j\"\nservice = \"a\"\n\n[[slos]]\nname = \"s\"\njourney = \"j\"\nsli = \"error\"\nobjective = 0.99\nperiod = \"7d\"\npolicy = \"fast\"\n",
        "11:10",
        "unknown policy \"fast\" (defined: default)",
    ),
    (
        "latency without threshold",
        "[[journeys]]\nname = \"j\"\nservice = \"a\"\n\n[[slos]]\nname = \"s\"\njourney = \"j\"\nsli = \"latency\"\nobjective = 0.99\nperiod = \"7d\"\n",
        "8:7",
        "SLO \"s\": a latency SLI needs a threshold, e.g. threshold = \"800ms\"",
    ),
    (
        "export_lag without threshold (issue 10)",
        "[[journeys]]\nname = \"j\"\nservice = \"a\"\n\n[[slos]]\nname = \"s\"\njourney = \"j\"\nsli = \"export_lag\"\nobjective = 0.99\nperiod = \"7d\"\n",
        "8:7",
        "SLO \"s\": an export_lag SLI needs a threshold, e.g. threshold = \"30s\"",
    ),
    (
        "threshold on a fragmentation SLI (issue 10)",
        "[[journeys]]\nname = \"j\"\nservice = \"a\"\n\n[[slos]]\nname = \"s\"\njourney = \"j\"\nsli = \"fragmentation\"\nthreshold = \"1s\"\nobjective = 0.99\nperiod = \"7d\"\n",
        "9:13",
        "SLO \"s\": threshold applies only to latency and export_lag SLIs, not fragmentation",
    ),
    (
        "trace_health drop ratio out of range (issue 10)",
        "[trace_health]\nvolume_window = \"1m\"\nvolume_drop_ratio = 1.5\n",
        "3:21",
        "trace_health.volume_drop_ratio must be strictly between 0 and 1, found 1.5",
    ),
    (
        "trace_health unknown key (issue 10)",
        "[trace_health]\ncardinality_limt = 10\n",
        "2:1",
        "unknown field `cardinality_limt`, expected one of `skew_tolerance`, `volume_window`, `volume_baseline`, `volume_drop_ratio`, `volume_min_spans`, `window`, `cardinality`, `cardinality_limit`, `max_services`, `max_keys_per_service`, `max_lost_context_rows`, `max_clock_skew_rows`, `idle_ttl`",
    ),
    (
        "bad matcher",
        "[[journeys]]\nname = \"j\"\nservice = \"a\"\nerror_when = [\"http.response.status_code >= high\"]\n",
        "4:15",
        "invalid matcher \"http.response.status_code >= high\": operator >= needs a number, got \"high\"",
    ),
    (
        "protect_reads without a token (issue 6)",
        "[server]\nlisten = \"127.0.0.1:8080\"\nprotect_reads = true\n",
        "1:2",
        "server.protect_reads needs server.api_token: nobody could read the API",
    ),
    (
        "instance name on SQLite (issue 7)",
        "[storage]\ninstance = \"a\"\n",
        "1:2",
        "storage.instance \"a\" needs PostgreSQL: several instances share one PostgreSQL database, a SQLite file serves one",
    ),
    (
        "cluster on SQLite (issue 7)",
        "[cluster]\npartitions = [0]\n",
        "1:2",
        "[cluster] needs storage.url on PostgreSQL: a SQLite file serves one instance",
    ),
    (
        "instance name with a space (issue 7)",
        "[storage]\nurl = \"postgres://tb@db/tb\"\ninstance = \"a b\"\n",
        "3:12",
        "instance name \"a b\" holds ' ': use letters, digits, '-', '_' and '.'",
    ),
    (
        "a partition twice (issue 7)",
        "[storage]\nurl = \"postgres://tb@db/tb\"\n\n[cluster]\npartitions = [1, 1]\n",
        "4:2",
        "cluster.partitions lists 1 twice",
    ),
    (
        "toml syntax",
        "[[journeys]]\nname = \"j\n",
        "2:10",
        "invalid basic string",
    ),
];

#[test]
fn each_broken_config_names_file_line_column_and_exits_1() {
    let dir = TempDir::new("check");
    for (case, config, at, message) in BROKEN {
        let path = dir.write("broken.toml", config);
        let out = run(&["check", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: exit code\n{stderr}");
        assert!(
            stderr.contains(&format!("error: {message}")),
            "{case}: message\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("--> {}:{at}\n", path.display())),
            "{case}: position {at}\n{stderr}"
        );
        assert!(
            stderr.trim_end().ends_with(": 1 error"),
            "{case}: exactly one error\n{stderr}"
        );
    }
}

#[test]
fn every_error_is_listed_not_only_the_first() {
    let dir = TempDir::new("check");
    let config = BASE
        .replace("period = \"28d\"", "period = \"28days\"")
        .replace("receiver = \"pager\"", "receiver = \"pagr\"")
        + "\n[[slos]]\nname = \"checkout-availability\"\njourney = \"nope\"\nsli = \"error\"\nobjective = 0.9\nperiod = \"7d\"\n"
        + "\n[[slos]]\nname = \"third\"\njourney = \"checkout\"\nsli = \"error\"\nobjective = 1.5\nperiod = \"7d\"\n";
    let path = dir.write("many.toml", &config);
    let out = run(&["check", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in [
        "invalid duration \"28days\"",
        "objective 1.5 is outside (0, 1)",
        "unknown receiver \"pagr\"",
        "duplicate SLO name \"checkout-availability\"",
        "unknown journey \"nope\"",
    ] {
        assert!(stderr.contains(want), "missing {want:?}\n{stderr}");
    }
    assert!(stderr.trim_end().ends_with(": 5 errors"), "{stderr}");
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let out = run(&["check", "/nonexistent/tracebudget.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config /nonexistent/tracebudget.toml"));
}
