//! Human wording shared by Slack, PagerDuty and email, so every channel states the same facts the
//! same way: `burn 14.9× (1h) / 15.2× (5m) > 14.4`; and for report digests the headline, the
//! table of SLOs and the lines about alerts of the period. Also the wire forms every format
//! shares: [`slo_url`], [`rfc3339`] timestamps and label [`object`]s.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::alert::{Alert, AlertDetail, AlertStatus, Contributor, Exemplar};
use crate::report::{AlertRecord, Digest, SloDigest};

/// A burn rate with one decimal: `14.9×`.
pub(crate) fn burn(rate: f64) -> String {
    format!("{rate:.1}×")
}

/// A threshold or objective as written: `14.4`, `6`, `99.9` (at most 6 decimals).
pub(crate) fn number(x: f64) -> String {
    let rounded = (x * 1e6).round() / 1e6;
    format!("{rounded}")
}

/// A share as a percentage with one decimal: `42.0%`.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// An objective as a percentage: `99.9%`.
pub(crate) fn objective(o: f64) -> String {
    format!("{}%", number(o * 100.0))
}

/// A duration the way config writes it: `1h`, `5m`, `2h54m`, `2.5s`.
pub(crate) fn duration(d: Duration) -> String {
    slis::format_duration(d).to_string()
}

/// A rule's window named exactly, as `/metrics` and the API name it: `1h`, `2d19h12m`.
pub(crate) fn window(d: Duration) -> String {
    slis::format_exact(d).to_string()
}

/// `FIRING` or `RESOLVED` with the severity: `PAGE FIRING`.
pub(crate) fn tag(alert: &Alert) -> String {
    let status = match alert.status {
        AlertStatus::Firing => "FIRING",
        AlertStatus::Resolved => "RESOLVED",
    };
    format!("{} {status}", alert.detail.severity.to_uppercase())
}

/// The burn rates against the rule: `burn 14.9× (1h) / 15.2× (5m) > 14.4` while firing,
/// `burn 0.8× (3d) / 0.3× (6h), threshold 1` once resolved.
pub(crate) fn burn_line(alert: &Alert) -> String {
    let d = &alert.detail;
    let rates = format!(
        "burn {} ({}) / {} ({})",
        burn(d.burn_long),
        window(d.long_window),
        burn(d.burn_short),
        window(d.short_window)
    );
    match alert.status {
        AlertStatus::Firing => format!("{rates} > {}", number(d.factor)),
        AlertStatus::Resolved => format!("{rates}, threshold {}", number(d.factor)),
    }
}

/// `[PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) > 14.4`.
pub(crate) fn headline(alert: &Alert) -> String {
    format!("[{}] {}: {}", tag(alert), alert.detail.slo, burn_line(alert))
}

/// When the budget runs out: `2h54m`, `already exhausted`, or `not at the current burn rate`.
pub(crate) fn exhaustion(d: &AlertDetail) -> String {
    if d.budget_remaining <= 0.0 {
        "already exhausted".to_owned()
    } else {
        match d.time_to_exhaustion {
            Some(t) => duration(t),
            None => "not at the current burn rate".to_owned(),
        }
    }
}

/// `2.5s, error` or `1.25s`.
pub(crate) fn exemplar_facts(e: &Exemplar) -> String {
    if e.error {
        format!("{}, error", duration(e.latency))
    } else {
        duration(e.latency)
    }
}

/// `payments POST /charge: 62.0% of bad events (31), error originated here`.
pub(crate) fn contributor(c: &Contributor) -> String {
    format!(
        "{} {}: {} of bad events ({}), {}",
        c.service,
        c.operation,
        percent(c.share),
        c.bad_events,
        c.reason
    )
}

/// `1 alert`, `2 alerts`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The period of a digest: `2026-11-16 09:00 → 2026-11-23 09:00 UTC`.
pub(crate) fn digest_period(d: &Digest) -> String {
    format!(
        "{} → {} UTC",
        d.from.format("%Y-%m-%d %H:%M"),
        d.to.format("%Y-%m-%d %H:%M")
    )
}

/// `3 SLOs, 1 budget exhausted, 2 alerts` (`all within budget` when none is exhausted).
pub(crate) fn digest_summary(d: &Digest) -> String {
    let exhausted = match d.exhausted_count() {
        0 => "all within budget".to_owned(),
        n => count(n, "budget exhausted", "budgets exhausted"),
    };
    format!(
        "{}, {exhausted}, {}",
        count(d.slos.len(), "SLO", "SLOs"),
        count(d.alert_count(), "alert", "alerts"),
    )
}

/// `[REPORT] weekly-budget: 3 SLOs, 1 budget exhausted, 2 alerts (2026-11-16 09:00 → 2026-11-23 09:00 UTC)`.
pub(crate) fn digest_headline(d: &Digest) -> String {
    format!("[REPORT] {}: {} ({})", d.report, digest_summary(d), digest_period(d))
}

/// The SLI over the period as a percentage with at most 3 decimals (`99.875%`, `100%`), or
/// `no data` without events.
pub(crate) fn sli(s: &SloDigest) -> String {
    match s.sli_ratio() {
        Some(r) => format!("{}%", (r * 1e5).round() / 1e3),
        None => "no data".to_owned(),
    }
}

/// The share of budget left (`-25.0%`); `n/a` should the evaluator ever hand over a non-number.
pub(crate) fn budget(s: &SloDigest) -> String {
    if s.budget_remaining.is_finite() {
        percent(s.budget_remaining)
    } else {
        "n/a".to_owned()
    }
}

/// The burn over the last hour (`1.2×`), or `no data` when that hour held no events.
pub(crate) fn current_burn(s: &SloDigest) -> String {
    if s.no_data || !s.current_burn.is_finite() {
        "no data".to_owned()
    } else {
        burn(s.current_burn)
    }
}

/// When the budget runs out: `17d12h`, `already exhausted`, or `not at the current burn rate`.
pub(crate) fn digest_exhaustion(s: &SloDigest) -> String {
    if s.exhausted() {
        "already exhausted".to_owned()
    } else {
        match s.time_to_exhaustion {
            Some(t) => duration(t),
            None => "not at the current burn rate".to_owned(),
        }
    }
}

/// Column titles of the digest table.
pub(crate) const DIGEST_COLUMNS: [&str; 6] = ["SLO", "Objective", "SLI", "Budget left", "Burn (1h)", "Alerts"];

/// One row of the digest table, in [`DIGEST_COLUMNS`] order.
pub(crate) fn digest_row(s: &SloDigest) -> [String; 6] {
    [
        s.slo.clone(),
        objective(s.objective),
        sli(s),
        budget(s),
        current_burn(s),
        s.alerts.len().to_string(),
    ]
}

/// The digest table as aligned plain text: a title row, then one row per SLO; columns two spaces
/// apart, no trailing spaces.
pub(crate) fn text_table(slos: &[SloDigest]) -> String {
    let rows: Vec<[String; 6]> = std::iter::once(DIGEST_COLUMNS.map(str::to_owned))
        .chain(slos.iter().map(digest_row))
        .collect();
    let mut widths = [0; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `PAGE SLOBurnRate: 2026-11-20T10:00:00Z → 2026-11-20T11:30:00Z (1h30m)`, or
/// `TICKET SLOBurnRate: since 2026-11-22T08:00:00Z, still firing`.
pub(crate) fn alert_record(a: &AlertRecord) -> String {
    let head = format!("{} {}", a.severity.to_uppercase(), a.alertname);
    match a.ends_at {
        Some(end) => {
            let lasted = (end - a.starts_at).to_std().unwrap_or_default();
            format!(
                "{head}: {} → {} ({})",
                rfc3339(a.starts_at),
                rfc3339(end),
                duration(lasted)
            )
        }
        None => format!("{head}: since {}, still firing", rfc3339(a.starts_at)),
    }
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Cuts `text` to at most `max` characters, ending with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The page of an SLO in tracebudget's UI: `{external_url}/slos/{slo}`, the SLO percent-encoded.
/// Every format links there (Alertmanager's `generatorURL`).
pub fn slo_url(external_url: &str, slo: &str) -> String {
    let mut url = external_url.trim_end_matches('/').to_owned();
    url.push_str("/slos/");
    for b in slo.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// A timestamp as Go's `time.RFC3339Nano` writes it (what Alertmanager emits): UTC with `Z`,
/// fractional seconds only when non-zero and without trailing zeros.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S");
    let nanos = t.timestamp_subsec_nanos().min(999_999_999);
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// Labels or annotations as a JSON object.
pub(crate) fn object(map: &BTreeMap<String, String>) -> serde_json::Value {
    map.iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn headlines() {
        let n = fixture::notification();
        assert_eq!(
            headline(&n.alerts[0]),
            "[PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) > 14.4"
        );
        assert_eq!(
            headline(&n.alerts[1]),
            "[TICKET RESOLVED] checkout-latency: burn 0.8× (3d) / 0.3× (6h), threshold 1"
        );
    }

    #[test]
    fn numbers() {
        for (got, want) in [
            (number(14.4), "14.4"),
            (number(6.0), "6"),
            (objective(0.999), "99.9%"),
            (objective(0.9995), "99.95%"),
            (percent(0.42), "42.0%"),
            (percent(-0.125), "-12.5%"),
            (burn(14.91), "14.9×"),
            (duration(Duration::from_secs(10_440)), "2h54m"),
            // Issue 18: a window is named exactly, never "2d19h".
            (window(Duration::from_secs(241_920)), "2d19h12m"),
        ] {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn exhaustion_wording() {
        let mut d = fixture::notification().alerts[0].detail.clone();
        assert_eq!(exhaustion(&d), "2h54m");
        d.time_to_exhaustion = None;
        assert_eq!(exhaustion(&d), "not at the current burn rate");
        d.budget_remaining = -0.1;
        assert_eq!(exhaustion(&d), "already exhausted");
    }

    #[test]
    fn digest_wording() {
        let d = crate::report::fixture::digest();
        assert_eq!(
            digest_headline(&d),
            "[REPORT] weekly-budget: 3 SLOs, 1 budget exhausted, 2 alerts (2026-11-16 09:00 → 2026-11-23 09:00 UTC)"
        );
        let cells: Vec<[String; 6]> = d.slos.iter().map(digest_row).collect();
        assert_eq!(
            cells,
            [
                ["checkout-latency", "99.9%", "99.875%", "-25.0%", "1.2×", "2"].map(String::from),
                ["search-errors", "99%", "99.5%", "50.0%", "0.8×", "0"].map(String::from),
                ["login-completeness", "99.5%", "no data", "100.0%", "no data", "0"].map(String::from),
            ]
        );
        let exhaustion: Vec<String> = d.slos.iter().map(digest_exhaustion).collect();
        assert_eq!(
            exhaustion,
            ["already exhausted", "17d12h", "not at the current burn rate"]
        );
        assert_eq!(
            alert_record(&d.slos[0].alerts[0]),
            "PAGE SLOBurnRate: 2026-11-20T10:00:00Z → 2026-11-20T11:30:00Z (1h30m)"
        );
        assert_eq!(
            alert_record(&d.slos[0].alerts[1]),
            "TICKET SLOBurnRate: since 2026-11-22T08:00:00Z, still firing"
        );

        let mut quiet = d.clone();
        quiet.slos.truncate(1);
        quiet.slos[0].budget_remaining = 0.1;
        quiet.slos[0].alerts.truncate(1);
        assert_eq!(
            digest_headline(&quiet),
            "[REPORT] weekly-budget: 1 SLO, all within budget, 1 alert (2026-11-16 09:00 → 2026-11-23 09:00 UTC)"
        );
        quiet.slos[0].budget_remaining = f64::NAN;
        quiet.slos[0].current_burn = f64::INFINITY;
        assert_eq!(
            (budget(&quiet.slos[0]), current_burn(&quiet.slos[0])),
            ("n/a".into(), "no data".into())
        );
    }

    #[test]
    fn digest_text_table() {
        let want = "\
SLO                 Objective  SLI      Budget left  Burn (1h)  Alerts
checkout-latency    99.9%      99.875%  -25.0%       1.2×       2
search-errors       99%        99.5%    50.0%        0.8×       0
login-completeness  99.5%      no data  100.0%       no data    0
";
        assert_eq!(text_table(&crate::report::fixture::digest().slos), want);
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            html(r#"<b class="x">Tom & 'Jerry'</b>"#),
            "&lt;b class=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn truncates_by_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("ééééé", 4).chars().count(), 4);
    }
}
