//! The email of a report digest, sent by [`super::EmailNotifier::send_report`] like an alert
//! notification: `Message-ID: <{digest id}@tracebudget>` and a `multipart/alternative` body.
//!
//! `Subject` is the digest's headline, e.g.
//! `[REPORT] weekly-budget: 3 SLOs, 1 budget exhausted, 2 alerts (2026-11-16 09:00 → 2026-11-23 09:00 UTC)`.
//! Both parts open with the table of SLOs (SLO, objective, SLI over the period, budget left, burn
//! over the last hour, alerts of the period), then give each SLO its journey, SLI kind and period,
//! events, time to exhaustion, link, alerts and top contributors. Every value in the HTML part is
//! escaped.

use std::fmt::Write as _;

use super::render::{self, slo_url};
use crate::report::{Digest, SloDigest};

/// The digest's headline.
pub fn subject(d: &Digest) -> String {
    render::digest_headline(d)
}

/// The facts of one SLO below the table, in the order both parts show them.
fn facts(d: &Digest, s: &SloDigest) -> Vec<(&'static str, String)> {
    vec![
        ("Journey", s.journey.clone()),
        ("SLI", format!("{} over {}", s.sli, s.period)),
        ("Events", format!("{}, {} bad", s.events, s.bad)),
        ("Time to exhaustion", render::digest_exhaustion(s)),
        ("SLO page", slo_url(&d.external_url, &s.slo)),
    ]
}

/// The plain-text part.
pub fn text_body(d: &Digest) -> String {
    let mut out = format!("{}\n\n{}", subject(d), render::text_table(&d.slos));
    for s in &d.slos {
        let _ = write!(out, "\n== {} ==\n", s.slo);
        for (name, value) in facts(d, s) {
            let _ = writeln!(out, "{:<20}{value}", format!("{name}:"));
        }
        if !s.alerts.is_empty() {
            out.push_str("Alerts:\n");
            for a in &s.alerts {
                let _ = writeln!(out, "  - {}", render::alert_record(a));
            }
        }
        if !s.top_contributors.is_empty() {
            out.push_str("Top contributors:\n");
            for c in &s.top_contributors {
                let _ = writeln!(out, "  - {}", render::contributor(c));
            }
        }
    }
    let _ = write!(
        out,
        "\n-- \ntracebudget {} (report {}, digest {})\n",
        d.external_url, d.report, d.id
    );
    out
}

/// The HTML part: the same facts as [`text_body`], the table as a `<table>`, every value escaped.
pub fn html_body(d: &Digest) -> String {
    use render::html as h;
    let mut out = String::from("<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n");
    let _ = writeln!(out, "<h2>{}</h2>", h(&subject(d)));
    out.push_str("<table cellpadding=\"4\" style=\"border-collapse: collapse\">\n<tr>");
    for (i, title) in render::DIGEST_COLUMNS.iter().enumerate() {
        let align = if i == 0 { "left" } else { "right" };
        let _ = write!(out, "<th align=\"{align}\">{title}</th>");
    }
    out.push_str("</tr>\n");
    for s in &d.slos {
        let color = if s.exhausted() { " style=\"color: #d32f2f\"" } else { "" };
        let _ = write!(out, "<tr{color}>");
        for (i, cell) in render::digest_row(s).iter().enumerate() {
            if i == 0 {
                let _ = write!(
                    out,
                    "<td><a href=\"{}\">{}</a></td>",
                    h(&slo_url(&d.external_url, &s.slo)),
                    h(cell)
                );
            } else {
                let _ = write!(out, "<td align=\"right\">{}</td>", h(cell));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    for s in &d.slos {
        let _ = writeln!(out, "<h3>{}</h3>\n<table>", h(&s.slo));
        for (name, value) in facts(d, s) {
            let value = if name == "SLO page" {
                format!("<a href=\"{0}\">{0}</a>", h(&value))
            } else {
                h(&value)
            };
            let _ = writeln!(out, "<tr><th align=\"left\">{name}</th><td>{value}</td></tr>");
        }
        out.push_str("</table>\n");
        if !s.alerts.is_empty() {
            out.push_str("<h4>Alerts</h4>\n<ul>\n");
            for a in &s.alerts {
                let _ = writeln!(out, "<li>{}</li>", h(&render::alert_record(a)));
            }
            out.push_str("</ul>\n");
        }
        if !s.top_contributors.is_empty() {
            out.push_str("<h4>Top contributors</h4>\n<ul>\n");
            for c in &s.top_contributors {
                let _ = writeln!(out, "<li>{}</li>", h(&render::contributor(c)));
            }
            out.push_str("</ul>\n");
        }
    }
    let _ = writeln!(
        out,
        "<p style=\"color: #777\"><a href=\"{}\">tracebudget</a> (report {}, digest {})</p>\n</body></html>",
        h(&d.external_url),
        h(&d.report),
        h(&d.id)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn exact_text_body() {
        let want = "\
[REPORT] weekly-budget: 3 SLOs, 1 budget exhausted, 2 alerts (2026-11-16 09:00 → 2026-11-23 09:00 UTC)

SLO                 Objective  SLI      Budget left  Burn (1h)  Alerts
checkout-latency    99.9%      99.875%  -25.0%       1.2×       2
search-errors       99%        99.5%    50.0%        0.8×       0
login-completeness  99.5%      no data  100.0%       no data    0

== checkout-latency ==
Journey:            checkout
SLI:                latency over 28d
Events:             40000, 50 bad
Time to exhaustion: already exhausted
SLO page:           http://127.0.0.1:8080/slos/checkout-latency
Alerts:
  - PAGE SLOBurnRate: 2026-11-20T10:00:00Z → 2026-11-20T11:30:00Z (1h30m)
  - TICKET SLOBurnRate: since 2026-11-22T08:00:00Z, still firing
Top contributors:
  - payments POST /charge: 62.0% of bad events (31), error originated here
  - inventory reserve: 38.0% of bad events (19), slowest child span

== search-errors ==
Journey:            search
SLI:                error over 28d
Events:             120000, 600 bad
Time to exhaustion: 17d12h
SLO page:           http://127.0.0.1:8080/slos/search-errors

== login-completeness ==
Journey:            login
SLI:                completeness over 7d
Events:             0, 0 bad
Time to exhaustion: not at the current burn rate
SLO page:           http://127.0.0.1:8080/slos/login-completeness

-- 
tracebudget http://127.0.0.1:8080 (report weekly-budget, digest report-weekly-budget-20261123T090000Z)
";
        assert_eq!(text_body(&fixture::digest()), want);
    }

    #[test]
    fn exact_html_table() {
        let html = html_body(&fixture::digest());
        let want = "\
<h2>[REPORT] weekly-budget: 3 SLOs, 1 budget exhausted, 2 alerts (2026-11-16 09:00 → 2026-11-23 09:00 UTC)</h2>
<table cellpadding=\"4\" style=\"border-collapse: collapse\">
<tr><th align=\"left\">SLO</th><th align=\"right\">Objective</th><th align=\"right\">SLI</th><th align=\"right\">Budget left</th><th align=\"right\">Burn (1h)</th><th align=\"right\">Alerts</th></tr>
<tr style=\"color: #d32f2f\"><td><a href=\"http://127.0.0.1:8080/slos/checkout-latency\">checkout-latency</a></td><td align=\"right\">99.9%</td><td align=\"right\">99.875%</td><td align=\"right\">-25.0%</td><td align=\"right\">1.2×</td><td align=\"right\">2</td></tr>
<tr><td><a href=\"http://127.0.0.1:8080/slos/search-errors\">search-errors</a></td><td align=\"right\">99%</td><td align=\"right\">99.5%</td><td align=\"right\">50.0%</td><td align=\"right\">0.8×</td><td align=\"right\">0</td></tr>
<tr><td><a href=\"http://127.0.0.1:8080/slos/login-completeness\">login-completeness</a></td><td align=\"right\">99.5%</td><td align=\"right\">no data</td><td align=\"right\">100.0%</td><td align=\"right\">no data</td><td align=\"right\">0</td></tr>
</table>
<h3>checkout-latency</h3>
<table>
<tr><th align=\"left\">Journey</th><td>checkout</td></tr>
<tr><th align=\"left\">SLI</th><td>latency over 28d</td></tr>
<tr><th align=\"left\">Events</th><td>40000, 50 bad</td></tr>
<tr><th align=\"left\">Time to exhaustion</th><td>already exhausted</td></tr>
<tr><th align=\"left\">SLO page</th><td><a href=\"http://127.0.0.1:8080/slos/checkout-latency\">http://127.0.0.1:8080/slos/checkout-latency</a></td></tr>
</table>
<h4>Alerts</h4>
<ul>
<li>PAGE SLOBurnRate: 2026-11-20T10:00:00Z → 2026-11-20T11:30:00Z (1h30m)</li>
<li>TICKET SLOBurnRate: since 2026-11-22T08:00:00Z, still firing</li>
</ul>
<h4>Top contributors</h4>
<ul>
<li>payments POST /charge: 62.0% of bad events (31), error originated here</li>
<li>inventory reserve: 38.0% of bad events (19), slowest child span</li>
</ul>
<h3>search-errors</h3>
";
        assert!(html.contains(want), "{html}");
        assert!(html.ends_with(
            "<p style=\"color: #777\"><a href=\"http://127.0.0.1:8080\">tracebudget</a> (report weekly-budget, digest report-weekly-budget-20261123T090000Z)</p>\n</body></html>\n"
        ));
    }

    #[test]
    fn html_escapes_every_value() {
        let mut d = fixture::digest();
        let evil = "<script>alert('x')</script> & \"more\"";
        d.report = evil.into();
        d.slos[0].slo = evil.into();
        d.slos[0].journey = evil.into();
        d.slos[0].top_contributors[0].operation = "<b>POST</b>".into();
        let html = html_body(&d);
        assert!(!html.contains("<script>") && !html.contains("<b>"), "{html}");
        let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;";
        assert!(html.contains(&format!("<h2>[REPORT] {escaped}: ")));
        assert!(html.contains(&format!("<h3>{escaped}</h3>")));
        assert!(html.contains(&format!("<tr><th align=\"left\">Journey</th><td>{escaped}</td></tr>")));
        assert!(html.contains("payments &lt;b&gt;POST&lt;/b&gt;: 62.0% of bad events (31)"));
        assert!(html.contains(
            "<a href=\"http://127.0.0.1:8080/slos/%3Cscript%3Ealert%28%27x%27%29%3C%2Fscript%3E%20%26%20%22more%22\">"
        ));
    }
}
