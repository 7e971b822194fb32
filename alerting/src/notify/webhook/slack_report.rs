//! Format `slack` for report digests: one incoming-webhook message.
//!
//! `text` is the digest's headline (shown in notifications). The blocks: the headline with the
//! period, the table of SLOs in a code block (SLO, objective, SLI, budget left, burn over the last
//! hour, alerts; at most [`MAX_ROWS`] rows, then how many more), one section per SLO that had
//! alerts or bad events to blame (at most [`MAX_DETAILED`]: budget, time to exhaustion, its alerts
//! and top contributors), and the digest id. Every section stays under Slack's 3,000 characters
//! and the message under its 50 blocks.

use serde_json::{Value, json};

use super::super::render::{self, slo_url};
use super::slack::{context, escape, mrkdwn, url};
use crate::report::{Digest, SloDigest};

/// SLO rows in the table.
pub const MAX_ROWS: usize = 25;
/// SLOs given a section of their own.
pub const MAX_DETAILED: usize = 10;
/// Alerts and contributors listed per SLO.
pub const MAX_LISTED: usize = 5;
/// Characters of one SLO name in the table.
const MAX_NAME: usize = 40;
/// Slack's limit on the text of one section.
const MAX_SECTION: usize = 3_000;

/// The Slack message of a digest.
pub fn payload(d: &Digest) -> Value {
    let headline = render::digest_headline(d);
    let mut blocks = vec![json!({ "type": "section", "text": mrkdwn(format!(
        "*<{}|Report {}>*: {}\n{}",
        url(&d.external_url),
        escape(&d.report),
        render::digest_summary(d),
        escape(&render::digest_period(d)),
    )) })];

    blocks.push(json!({ "type": "section", "text": mrkdwn(table(&d.slos)) }));

    let detailed: Vec<&SloDigest> = d
        .slos
        .iter()
        .filter(|s| !s.alerts.is_empty() || !s.top_contributors.is_empty())
        .collect();
    for s in detailed.iter().take(MAX_DETAILED) {
        blocks.push(json!({ "type": "section", "text": mrkdwn(detail(d, s)) }));
    }
    if detailed.len() > MAX_DETAILED {
        blocks.push(context(format!(
            "…and {} more SLOs with alerts in <{}|tracebudget>",
            detailed.len() - MAX_DETAILED,
            url(&d.external_url)
        )));
    }
    blocks.push(context(format!("digest {}", escape(&d.id))));
    json!({ "text": escape(&headline), "blocks": blocks })
}

/// The table in a code block: at most [`MAX_ROWS`] rows, fewer when escaping makes them longer
/// than a section may be.
fn table(slos: &[SloDigest]) -> String {
    let mut shown: Vec<SloDigest> = slos.iter().take(MAX_ROWS).cloned().collect();
    for s in &mut shown {
        s.slo = render::truncate(&s.slo, MAX_NAME);
    }
    loop {
        let mut table = render::text_table(&shown);
        if slos.len() > shown.len() {
            table.push_str(&format!("…and {} more SLOs\n", slos.len() - shown.len()));
        }
        let text = format!("```\n{}```", escape(&table));
        if text.chars().count() <= MAX_SECTION || shown.is_empty() {
            return text;
        }
        shown.pop();
    }
}

fn detail(d: &Digest, s: &SloDigest) -> String {
    let mut out = format!(
        "*<{}|{}>*: budget left {}, burn {} (1h), exhaustion: {}",
        url(&slo_url(&d.external_url, &s.slo)),
        escape(&render::truncate(&s.slo, 200)),
        render::budget(s),
        render::current_burn(s),
        render::digest_exhaustion(s)
    );
    for a in s.alerts.iter().take(MAX_LISTED) {
        out.push_str(&format!("\n• {}", escape(&render::alert_record(a))));
    }
    if s.alerts.len() > MAX_LISTED {
        out.push_str(&format!("\n• …and {} more alerts", s.alerts.len() - MAX_LISTED));
    }
    for c in s.top_contributors.iter().take(MAX_LISTED) {
        out.push_str(&format!(
            "\n• *{}* `{}`: {} of bad events ({}), {}",
            escape(&render::truncate(&c.service, 100)),
            escape(&render::truncate(&c.operation, 200)),
            render::percent(c.share),
            c.bad_events,
            escape(&render::truncate(&c.reason, 100))
        ));
    }
    render::truncate(&out, MAX_SECTION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn exact_message() {
        let want = json!({
            "text": "[REPORT] weekly-budget: 3 SLOs, 1 budget exhausted, 2 alerts (2026-11-16 09:00 → 2026-11-23 09:00 UTC)",
            "blocks": [
                { "type": "section", "text": { "type": "mrkdwn", "text":
                    "*<http://127.0.0.1:8080|Report weekly-budget>*: 3 SLOs, 1 budget exhausted, 2 alerts\n\
                     2026-11-16 09:00 → 2026-11-23 09:00 UTC" } },
                { "type": "section", "text": { "type": "mrkdwn", "text":
                    "```\n\
                     SLO                 Objective  SLI      Budget left  Burn (1h)  Alerts\n\
                     checkout-latency    99.9%      99.875%  -25.0%       1.2×       2\n\
                     search-errors       99%        99.5%    50.0%        0.8×       0\n\
                     login-completeness  99.5%      no data  100.0%       no data    0\n\
                     ```" } },
                { "type": "section", "text": { "type": "mrkdwn", "text":
                    "*<http://127.0.0.1:8080/slos/checkout-latency|checkout-latency>*: budget left -25.0%, burn 1.2× (1h), exhaustion: already exhausted\n\
                     • PAGE SLOBurnRate: 2026-11-20T10:00:00Z → 2026-11-20T11:30:00Z (1h30m)\n\
                     • TICKET SLOBurnRate: since 2026-11-22T08:00:00Z, still firing\n\
                     • *payments* `POST /charge`: 62.0% of bad events (31), error originated here\n\
                     • *inventory* `reserve`: 38.0% of bad events (19), slowest child span" } },
                { "type": "context", "elements": [
                    { "type": "mrkdwn", "text": "digest report-weekly-budget-20261123T090000Z" }
                ] }
            ]
        });
        assert_eq!(payload(&fixture::digest()), want);
    }

    #[test]
    fn large_digests_stay_within_slack_limits() {
        let mut d = fixture::digest();
        let mut s = d.slos[0].clone();
        s.slo = "&".repeat(500);
        s.alerts = vec![s.alerts[0].clone(); 40];
        s.top_contributors = vec![s.top_contributors[0].clone(); 40];
        d.slos = vec![s; 60];
        let p = payload(&d);
        let blocks = p["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 1 + 1 + MAX_DETAILED + 1 + 1);
        for b in blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= 3_000, "{} characters", t.chars().count());
            }
        }
        assert!(blocks[1]["text"]["text"].as_str().unwrap().ends_with(" more SLOs\n```"));
        assert_eq!(
            blocks[2 + MAX_DETAILED]["elements"][0]["text"],
            "…and 50 more SLOs with alerts in <http://127.0.0.1:8080|tracebudget>"
        );
    }

    #[test]
    fn user_text_cannot_inject_links() {
        let mut d = fixture::digest();
        d.report = "<!channel>".into();
        d.slos[0].top_contributors[0].operation = "<http://evil|click>".into();
        let p = payload(&d);
        assert!(p["text"].as_str().unwrap().starts_with("[REPORT] &lt;!channel&gt;: "));
        let detail = p["blocks"][2]["text"]["text"].as_str().unwrap();
        assert!(detail.contains("`&lt;http://evil|click&gt;`"), "{detail}");
    }
}
