//! `tracebudget check CONFIG`: what a config means, in words an SRE can review. URLs are shown
//! through [`slis::config::redact_url`], like the config view: no secret in a CI log.

use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

use slis::budget::outage_fire_time;
use slis::config::redact_url;
use slis::{format_duration, format_exact};
use tracebudget_alerting::config::{Route, WebhookFormat};

use crate::app::config::{self, Config};

/// `tracebudget check CONFIG`: the summary of a valid config on stdout (exit 0), or every error
/// with its line:column on stderr (exit 1).
pub fn run(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(c) => {
            print!("{}", summary(&path.display().to_string(), &c, chrono::Utc::now()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The summary printed for a valid config. `now` dates the next run of each report.
pub fn summary(file: &str, c: &Config, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut out = String::new();
    let o = &mut out;
    let a = &c.alerting;
    let counts = [
        (c.journeys.0.len(), "journey", "journeys"),
        (a.slos.len(), "SLO", "SLOs"),
        (a.policies.len(), "policy", "policies"),
        (a.receivers.len(), "receiver", "receivers"),
        (a.reports.len(), "report", "reports"),
    ];
    let counts: Vec<String> = counts
        .iter()
        .map(|(n, one, many)| format!("{n} {}", if *n == 1 { one } else { many }))
        .collect();
    let _ = writeln!(o, "{file}: valid — {}", counts.join(", "));

    let _ = writeln!(o, "\nJourneys");
    for j in &c.journeys.0 {
        let r = &j.root;
        let mut root = Vec::new();
        root.extend(r.service.as_ref().map(|s| format!("service={s}")));
        root.extend(r.span_name.as_ref().map(|s| format!("span={s:?}")));
        root.extend(r.http_method.as_ref().map(|s| format!("method={s}")));
        root.extend(r.http_route.as_ref().map(|s| format!("route={s}")));
        root.extend(r.attributes.iter().map(|m| m.to_string()));
        let mut errors: Vec<String> = j.error_rules.iter().map(|m| m.to_string()).collect();
        if j.status_error {
            errors.insert(0, "status ERROR".to_owned());
        }
        let _ = writeln!(o, "  {}", j.name);
        let _ = writeln!(o, "    root:     {}", root.join(" "));
        let _ = writeln!(
            o,
            "    bad when: {}",
            if errors.is_empty() {
                "never".to_owned()
            } else {
                errors.join(" or ")
            }
        );
        if !j.expected_services.is_empty() {
            let services: Vec<&str> = j.expected_services.iter().map(|s| &**s).collect();
            let _ = writeln!(o, "    complete: {}", services.join(", "));
        }
    }

    let _ = writeln!(o, "\nSLOs");
    let _ = writeln!(
        o,
        "  {:<24} {:<10} {:<18} {:>9} {:<16} {:>14}",
        "NAME", "JOURNEY", "SLI", "OBJECTIVE", "PERIOD", "BAD PER MILLION"
    );
    for s in &a.slos {
        let _ = writeln!(
            o,
            "  {:<24} {:<10} {:<18} {:>9} {:<16} {:>14}",
            s.name,
            c.journeys.0[s.journey].name,
            s.sli.to_string(),
            format!("{}%", s.objective * 100.0),
            s.period.to_string(),
            s.budget_per_million()
        );
    }

    let _ = writeln!(
        o,
        "\nAlert windows (burn factor over both windows; time for a total outage after steady traffic to fire)"
    );
    for s in &a.slos {
        let p = &a.policies[s.policy];
        let _ = writeln!(
            o,
            "  {} — policy {:?}, at least {} events in the long window",
            s.name, p.name, p.min_events
        );
        for r in p.rules_for(&s.period) {
            let fire = match outage_fire_time(s.objective, &r) {
                Some(d) => format!("fires {} into an outage", format_duration(d)),
                None => "never fires: factor × budget ≥ 1".to_owned(),
            };
            let _ = writeln!(
                o,
                "    {:<6} {:>5}×  long {:<9} short {:<9} {}",
                r.severity,
                r.factor,
                format_exact(r.long).to_string(),
                format_exact(r.short).to_string(),
                fire
            );
        }
    }

    if !a.receivers.is_empty() {
        let _ = writeln!(o, "\nReceivers");
        for r in &a.receivers {
            let what = if let Some(w) = &r.webhook {
                let format = match w.format {
                    WebhookFormat::Generic => "generic",
                    WebhookFormat::Alertmanager => "alertmanager",
                    WebhookFormat::Slack => "slack",
                    WebhookFormat::Pagerduty => "pagerduty",
                };
                format!("webhook ({format}) {}", redact_url(&w.url.0))
            } else if let Some(e) = &r.email {
                format!("email to {} via {}", e.to.join(", "), e.smarthost)
            } else if let Some(am) = &r.alertmanager {
                format!("alertmanager {}", redact_url(&am.url.0))
            } else {
                unreachable!("validation ensures a receiver has a kind")
            };
            let _ = writeln!(o, "  {:<24} {what}", r.name.get_ref());
        }
    }

    if let Some(route) = &a.route {
        let _ = writeln!(o, "\nRoutes");
        write_route(o, route, 1);
    }

    if !a.reports.is_empty() {
        let _ = writeln!(o, "\nReports");
        for r in &a.reports {
            let next = r
                .schedule
                .schedule
                .after(&now)
                .next()
                .map_or("never".to_owned(), |t| t.to_rfc3339());
            let slos = if r.slos.is_empty() {
                "all SLOs".to_owned()
            } else {
                r.slos
                    .iter()
                    .map(|i| a.slos[*i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                o,
                "  {:<16} {:?} → {}, {slos}; next {next}",
                r.name, r.schedule.text, r.receiver
            );
        }
    }
    write_privacy(o, c);
    out
}

/// `[privacy]`: whose values are kept, which are only read while matching, and the rules.
fn write_privacy(o: &mut String, c: &Config) {
    let p = &c.privacy;
    let _ = writeln!(o, "\nPrivacy");
    let kept = if p.allow_list.is_empty() {
        "none".to_owned()
    } else {
        p.allow_list.join(", ")
    };
    let _ = writeln!(o, "  values kept or shown:   {kept} (attribute_allow_list)");
    let keys = tracebudget_engine::decode::AttrKeys::from_journeys(&c.journeys);
    let read: Vec<&str> = keys.keys().filter(|k| !p.allows(k)).collect();
    let _ = writeln!(o, "  read to match, dropped: {}", read.join(", "));
    let others = if c.trace_health.cardinality {
        "value hashed into the cardinality sketches (key shown), never kept"
    } else {
        "value never read"
    };
    let _ = writeln!(o, "  every other attribute:  {others}");
    let rules = p.redactor.names();
    let _ = writeln!(
        o,
        "  redaction rules:        {}",
        if rules.is_empty() {
            "none (span names and service names are shown as they come)".to_owned()
        } else {
            rules.join(", ")
        }
    );
}

fn write_route(o: &mut String, r: &Route, depth: usize) {
    let matchers = if r.matchers.is_empty() {
        "everything".to_owned()
    } else {
        r.matchers.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(
        o,
        "{}{matchers} → {} (group by {}, wait {}, interval {}, repeat {}{})",
        "  ".repeat(depth),
        r.receiver,
        r.group_by.join(","),
        format_duration(r.group_wait),
        format_duration(r.group_interval),
        format_duration(r.repeat_interval),
        if r.continue_matching { ", continue" } else { "" }
    );
    for child in &r.routes {
        write_route(o, child, depth + 1);
    }
}
