//! The Grafana dashboard (`dashboards/grafana/tracebudget.json`, issue #6): it parses, is wired
//! to a Prometheus data source variable, and every metric name any of its PromQL expressions or
//! template variables queries exists in the real binary's /metrics after some load.

use std::collections::BTreeSet;
use std::time::Duration;

use tracebudget_tests::{Json, Metrics, Server, TempDir, example_config, free_addrs, loadgen, repo_root, wait_for};

fn dashboard() -> Json {
    let path = repo_root().join("dashboards/grafana/tracebudget.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Json::parse(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// PromQL words that are not metric names: keywords, aggregation and function names (a name
/// followed by `(` is skipped anyway; these guard the forms without parentheses).
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    // Aggregations may put their `by (…)` before the parenthesis.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The metric names an expression reads: identifiers outside label matchers (`{…}`), range and
/// subquery brackets (`[…]`), strings and `by`/`without`/`on`/`ignoring` label lists, that are
/// not a function call (followed by `(`) or a keyword. Grafana's `$variables` are skipped.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut label_list = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut quoted = None;
                i += 1;
                while i < chars.len() {
                    match (quoted, chars[i]) {
                        (None, q @ ('"' | '\'' | '`')) => quoted = Some(q),
                        (Some(q), x) if x == q => quoted = None,
                        (Some(_), '\\') => i += 1,
                        (None, x) if x == close => break,
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            '(' if label_list => {
                // `by (slo, severity)`: labels, not metrics.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                label_list = false;
                i += 1;
            }
            c if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                // A number, with its exponent or a duration unit.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let lower = word.to_ascii_lowercase();
                if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&lower.as_str()) {
                    label_list = true;
                } else if chars.get(j) != Some(&'(') && !KEYWORDS.contains(&lower.as_str()) {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn the_tokenizer_finds_metric_names_only() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"tracebudget_slo_burn_rate{slo=~"$slo",window!="period"}"#,
            &["tracebudget_slo_burn_rate"],
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[$__rate_interval])))",
            &["x_seconds_bucket"],
        ),
        (
            "time() - tracebudget_storage_last_flush_timestamp_seconds",
            &["tracebudget_storage_last_flush_timestamp_seconds"],
        ),
        (
            r#"max by (slo, severity) (a{l="b{c}"}) > 0 and on (slo) b offset 5m or c_total[1h:1m]"#,
            &["a", "b", "c_total"],
        ),
        ("sum without (reason) (rate(y_total[5m])) * 1e3", &["y_total"]),
    ];
    for (expr, want) in cases {
        assert_eq!(metric_names(expr), *want, "{expr}");
    }
}

/// Every `expr` of every panel (rows nest panels too), with the panel's title.
fn exprs(panels: &[Json], out: &mut Vec<(String, String)>) {
    for p in panels {
        let title = p.get("title").and_then(Json::as_str).unwrap_or("").to_owned();
        for t in p.get("targets").and_then(Json::as_array).unwrap_or(&[]) {
            let expr = t.get("expr").and_then(Json::as_str).expect("every target has an expr");
            assert_eq!(
                t.at(&["datasource", "uid"]).and_then(Json::as_str),
                Some("${DS_PROMETHEUS}"),
                "target of {title:?} uses the data source variable"
            );
            out.push((title.clone(), expr.to_owned()));
        }
        if let Some(nested) = p.get("panels").and_then(Json::as_array) {
            exprs(nested, out);
        }
    }
}

/// The dashboard's queries: (where, metric name), panel expressions and `label_values(...)`.
fn queried_names(d: &Json) -> BTreeSet<(String, String)> {
    let mut all = Vec::new();
    exprs(d.get("panels").and_then(Json::as_array).expect("panels"), &mut all);
    assert!(all.len() >= 15, "the dashboard queries {} expressions", all.len());
    let mut names = BTreeSet::new();
    for (title, expr) in &all {
        let found = metric_names(expr);
        assert!(!found.is_empty(), "no metric in {expr:?} of {title:?}");
        for n in found {
            names.insert((n, title.clone()));
        }
    }
    let vars = d
        .at(&["templating", "list"])
        .and_then(Json::as_array)
        .expect("templating");
    for v in vars
        .iter()
        .filter(|v| v.get("type").and_then(Json::as_str) == Some("query"))
    {
        let def = v
            .get("definition")
            .and_then(Json::as_str)
            .expect("a query variable's definition");
        let inner = def
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{def:?} is label_values(metric, label)"));
        let (metric, _label) = inner.split_once(',').expect("metric, label");
        names.insert((metric.trim().to_owned(), format!("variable {def}")));
    }
    names
}

#[test]
fn grafana_dashboard_parses_and_uses_a_prometheus_data_source_variable() {
    let d = dashboard();
    assert!(d.num(&["schemaVersion"]) >= 39.0);
    let vars = d
        .at(&["templating", "list"])
        .and_then(Json::as_array)
        .expect("templating");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v.get("name").and_then(Json::as_str) == Some(name))
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    let ds = var("DS_PROMETHEUS");
    assert_eq!(ds.get("type").and_then(Json::as_str), Some("datasource"));
    assert_eq!(ds.get("query").and_then(Json::as_str), Some("prometheus"));
    let slo = var("slo");
    assert_eq!(
        slo.get("definition").and_then(Json::as_str),
        Some("label_values(tracebudget_slo_objective_ratio, slo)")
    );
    let titles: Vec<&str> = d
        .get("panels")
        .and_then(Json::as_array)
        .unwrap()
        .iter()
        .filter(|p| p.get("type").and_then(Json::as_str) == Some("row"))
        .filter_map(|p| p.get("title").and_then(Json::as_str))
        .collect();
    assert_eq!(titles, ["SLO overview", "Latency", "Engine health"]);
}

fn exists(m: &Metrics, name: &str) -> bool {
    m.has(name)
        || ["_bucket", "_count", "_sum"]
            .iter()
            .any(|s| m.has(&format!("{name}{s}")))
}

#[test]
fn every_metric_the_grafana_dashboard_queries_exists_in_metrics() {
    let names = queried_names(&dashboard());
    let dir = TempDir::new("grafana");
    let [api, grpc, http, zipkin] = free_addrs(4)[..] else {
        unreachable!()
    };
    let config = example_config(&dir, api, grpc, http, zipkin);
    let mut server = Server::start(&config, api);
    // Errors and slow roots, so burn rates are above 0 and the budgets run out in finite time.
    let sent = loadgen(
        &[
            "--config",
            config.to_str().unwrap(),
            "--endpoint",
            &format!("http://{http}"),
            "--traces",
            "2000",
            "--rate",
            "0",
            "--error-rate",
            "0.05",
            "--slow-rate",
            "0.05",
            "--incomplete-rate",
            "0.05",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(sent.num(&["accepted", "traces"]), 2000.0);
    let missing = |m: &Metrics| -> Vec<String> {
        names
            .iter()
            .filter(|(n, _)| !exists(m, n))
            .map(|(n, w)| format!("{n} (in {w})"))
            .collect()
    };
    // The evaluator and the flusher run on their own schedules: wait for their first rounds.
    let m = wait_for(&mut server, Duration::from_secs(30), |m| missing(m).is_empty());
    assert_eq!(
        missing(&m),
        Vec::<String>::new(),
        "queried by the dashboard, absent from /metrics"
    );
    assert!(names.len() >= 25, "{} names: {names:?}", names.len());
}
