//! What `tracebudget replay` prints: a table for people, JSON for programs, CSV for sheets.
//! Times are the virtual clock's (the spans' own), RFC 3339 UTC.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use serde_json::{Value, json};
use slis::Timestamp;

use super::{ConfigResult, Event, Report, SloFinal};

/// How many corrupt records the JSON output lists (all are counted).
pub const CORRUPT_LISTED: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

pub fn write(report: &Report, format: OutputFormat, out: &mut impl Write) -> io::Result<()> {
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &to_json(report))?;
            writeln!(out)
        }
        OutputFormat::Csv => csv(report, out),
        OutputFormat::Table => table(report, out),
    }
}

fn time(t: Timestamp) -> String {
    tracebudget_alerting::alerter::datetime(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1e3)
}

fn event_json(e: &Event) -> Value {
    json!({
        "at": time(e.at),
        "at_unix_ms": e.at.unix_millis(),
        "event": if e.firing { "firing" } else { "resolved" },
        "alertname": e.alertname,
        "slo": e.slo,
        "severity": e.severity,
        "factor": e.factor,
        "long_window_seconds": e.long_window.as_secs_f64(),
        "short_window_seconds": e.short_window.as_secs_f64(),
        "burn_long": e.burn_long,
        "burn_short": e.burn_short,
        "budget_remaining": e.budget_remaining,
    })
}

fn slo_json(s: &SloFinal) -> Value {
    json!({
        "name": s.name,
        "journey": s.journey,
        "objective": s.objective,
        "events": s.events,
        "bad_events": s.bad,
        "sli_ratio": s.sli(),
        "budget_remaining": s.budget_remaining,
        "p95_ms": ms(s.p95),
        "p99_ms": ms(s.p99),
    })
}

/// Alerts whose last transition is `firing`: still firing when the data ended, as
/// "alertname slo severity".
pub fn firing_at_end(events: &[Event]) -> Vec<String> {
    let mut last: BTreeMap<String, bool> = BTreeMap::new();
    for e in events {
        last.insert(format!("{} {} {}", e.alertname, e.slo, e.severity), e.firing);
    }
    last.into_iter().filter(|(_, firing)| *firing).map(|(k, _)| k).collect()
}

/// Per (SLO, severity), when each config first fired, and how much later than the earliest.
pub fn first_firing(configs: &[ConfigResult]) -> BTreeMap<(String, String), Vec<Option<Timestamp>>> {
    let mut out: BTreeMap<(String, String), Vec<Option<Timestamp>>> = BTreeMap::new();
    for (i, c) in configs.iter().enumerate() {
        for e in c.events.iter().filter(|e| e.firing) {
            let row = out
                .entry((e.slo.clone(), e.severity.clone()))
                .or_insert_with(|| vec![None; configs.len()]);
            if row[i].is_none() {
                row[i] = Some(e.at);
            }
        }
    }
    out
}

fn to_json(r: &Report) -> Value {
    let read = &r.read;
    let comparison: Vec<Value> = first_firing(&r.configs)
        .into_iter()
        .map(|((slo, severity), firsts)| {
            let earliest = firsts.iter().flatten().min().copied();
            json!({
                "slo": slo,
                "severity": severity,
                "first_firing": r.configs.iter().zip(&firsts).map(|(c, f)| json!({
                    "config": c.config,
                    "at": f.map(time),
                    "after_earliest_seconds": f.zip(earliest).map(|(f, e)| (f - e).as_secs_f64()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "inputs": read.inputs.iter().map(|i| json!({
            "name": i.name, "format": i.framing, "gzip": i.gzip, "bytes": i.bytes, "requests": i.requests,
        })).collect::<Vec<_>>(),
        "requests": read.requests,
        "spans": read.spans,
        "invalid_spans": read.invalid_spans,
        "elapsed_seconds": read.elapsed.as_secs_f64(),
        "spans_per_second": read.spans as f64 / read.elapsed.as_secs_f64().max(1e-9),
        "stage_seconds": {
            "read": read.stages.read.as_secs_f64(),
            "decode": read.stages.decode.as_secs_f64(),
            "engine": read.stages.engine.as_secs_f64(),
        },
        "corrupt": {
            "count": read.corrupt,
            "records": read.corrupt_listed.iter().map(|c| {
                let mut v = json!({ "input": c.input, "reason": c.reason });
                match c.at {
                    tracebudget_engine::replay::Position::Line(n) => v["line"] = json!(n),
                    tracebudget_engine::replay::Position::Offset(o) => v["offset"] = json!(o),
                }
                v
            }).collect::<Vec<_>>(),
        },
        "configs": r.configs.iter().map(|c| json!({
            "config": c.config,
            "start": c.start.map(time),
            "end": time(c.end),
            "accepted_spans": c.accepted_spans,
            "refused_spans": c.refused,
            "notifications": c.notifications,
            "timeline": c.events.iter().map(event_json).collect::<Vec<_>>(),
            "firing_at_end": firing_at_end(&c.events),
            "slos": c.slos.iter().map(slo_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "comparison": comparison,
    })
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(String::new, |v| format!("{v:.digits$}"))
}

fn csv(r: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "record,config,at,event,alertname,slo,severity,factor,burn_long,burn_short,budget_remaining,events,bad_events,sli_ratio,p95_ms,p99_ms"
    )?;
    for c in &r.configs {
        let config = quote(&c.config);
        for e in &c.events {
            writeln!(
                out,
                "alert,{config},{},{},{},{},{},{},{},{},{},,,,,",
                time(e.at),
                if e.firing { "firing" } else { "resolved" },
                quote(&e.alertname),
                quote(&e.slo),
                e.severity,
                e.factor,
                e.burn_long,
                e.burn_short,
                e.budget_remaining
            )?;
        }
        for s in &c.slos {
            writeln!(
                out,
                "slo,{config},{},,,{},,,,,{},{},{},{},{},{}",
                time(c.end),
                quote(&s.name),
                s.budget_remaining,
                s.events,
                s.bad,
                opt(s.sli(), 6),
                opt(ms(s.p95), 3),
                opt(ms(s.p99), 3)
            )?;
        }
    }
    Ok(())
}

/// A CSV field, quoted when it needs to be.
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

fn table(r: &Report, out: &mut impl Write) -> io::Result<()> {
    let read = &r.read;
    for i in &read.inputs {
        writeln!(
            out,
            "input {}: {}{}, {} bytes, {} requests",
            i.name,
            i.framing,
            if i.gzip { " (gzip)" } else { "" },
            i.bytes,
            i.requests
        )?;
    }
    writeln!(
        out,
        "read {} requests, {} spans ({} invalid) in {:.2}s ({:.0} spans/s); {} corrupt records skipped",
        read.requests,
        read.spans,
        read.invalid_spans,
        read.elapsed.as_secs_f64(),
        read.spans as f64 / read.elapsed.as_secs_f64().max(1e-9),
        read.corrupt
    )?;
    for c in &r.configs {
        writeln!(out)?;
        writeln!(
            out,
            "== {} ({} → {}, virtual time)",
            c.config,
            c.start.map_or_else(|| "no data".to_owned(), time),
            time(c.end)
        )?;
        if !c.refused.is_empty() {
            let list: Vec<String> = c.refused.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(out, "spans refused or dropped: {}", list.join(", "))?;
        }
        writeln!(out, "Timeline ({} alert transitions):", c.events.len())?;
        writeln!(
            out,
            "  {:<24} {:<9} {:<28} {:<7} {:>10} {:>10} {:>8}",
            "at", "event", "slo", "sev", "burn long", "burn short", "budget"
        )?;
        for e in &c.events {
            writeln!(
                out,
                "  {:<24} {:<9} {:<28} {:<7} {:>10.2} {:>10.2} {:>8}",
                time(e.at),
                if e.firing { "FIRING" } else { "resolved" },
                e.slo,
                e.severity,
                e.burn_long,
                e.burn_short,
                pct(e.budget_remaining)
            )?;
        }
        let still = firing_at_end(&c.events);
        if !still.is_empty() {
            writeln!(out, "  still firing at the end: {}", still.join(", "))?;
        }
        if !c.notifications.is_empty() {
            let list: Vec<String> = c.notifications.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(out, "notifications that would have been sent: {}", list.join(", "))?;
        }
        writeln!(out, "SLOs at the end:")?;
        writeln!(
            out,
            "  {:<28} {:>10} {:>8} {:>10} {:>9} {:>10} {:>10}",
            "slo", "events", "bad", "sli", "budget", "p95 ms", "p99 ms"
        )?;
        for s in &c.slos {
            writeln!(
                out,
                "  {:<28} {:>10} {:>8} {:>10} {:>9} {:>10} {:>10}",
                s.name,
                s.events,
                s.bad,
                s.sli().map_or_else(|| "-".to_owned(), |v| format!("{:.4}%", v * 100.0)),
                pct(s.budget_remaining),
                opt(ms(s.p95), 1),
                opt(ms(s.p99), 1)
            )?;
        }
    }
    if r.configs.len() > 1 {
        writeln!(out)?;
        writeln!(out, "First firing per config (relative to the earliest):")?;
        for ((slo, severity), firsts) in first_firing(&r.configs) {
            let earliest = firsts.iter().flatten().min().copied();
            let cells: Vec<String> = r
                .configs
                .iter()
                .zip(&firsts)
                .map(|(c, f)| match (f, earliest) {
                    (Some(f), Some(e)) => format!("{}: {} (+{:.0}s)", c.config, time(*f), (*f - e).as_secs_f64()),
                    _ => format!("{}: never", c.config),
                })
                .collect();
            writeln!(out, "  {slo} {severity}: {}", cells.join("; "))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: i64, slo: &str, severity: &str, firing: bool) -> Event {
        Event {
            at: Timestamp::from_unix_secs(at),
            firing,
            alertname: "SLOBurnRate".into(),
            slo: slo.into(),
            severity: severity.into(),
            factor: 14.4,
            long_window: Duration::from_secs(3_600),
            short_window: Duration::from_secs(300),
            burn_long: 15.0,
            burn_short: 20.0,
            budget_remaining: 0.5,
        }
    }

    fn config(name: &str, events: Vec<Event>) -> ConfigResult {
        ConfigResult {
            config: name.into(),
            start: None,
            end: Timestamp::EPOCH,
            events,
            slos: vec![],
            notifications: BTreeMap::new(),
            refused: BTreeMap::new(),
            accepted_spans: 0,
        }
    }

    #[test]
    fn side_by_side_first_firings_and_alerts_left_firing() {
        let a = config(
            "a",
            vec![
                event(100, "x", "page", true),
                event(200, "x", "page", false),
                event(300, "x", "page", true), // a second page: the first one counts
                event(150, "y", "ticket", true),
            ],
        );
        let b = config("b", vec![event(130, "x", "page", true), event(400, "z", "page", true)]);
        let t = |s: i64| Some(Timestamp::from_unix_secs(s));
        let got = first_firing(&[a.clone(), b.clone()]);
        let want: BTreeMap<(String, String), Vec<Option<Timestamp>>> = [
            (("x".into(), "page".into()), vec![t(100), t(130)]),
            (("y".into(), "ticket".into()), vec![t(150), None]),
            (("z".into(), "page".into()), vec![None, t(400)]),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
        assert_eq!(firing_at_end(&a.events), ["SLOBurnRate x page", "SLOBurnRate y ticket"]);
        assert_eq!(
            firing_at_end(&[event(1, "x", "page", true), event(2, "x", "page", false)]),
            Vec::<String>::new()
        );
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("plain"), "plain");
    }
}
