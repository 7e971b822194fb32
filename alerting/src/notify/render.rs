//! Human wording shared by Slack, PagerDuty and email, so every channel states the same facts the
//! same way: `burn 14.9× (1h) / 15.2× (5m) > 14.4`.

use std::time::Duration;

use super::{Alert, AlertDetail, AlertStatus, Exemplar};

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
        duration(d.long_window),
        burn(d.burn_short),
        duration(d.short_window)
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
