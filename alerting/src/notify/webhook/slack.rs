//! Format `slack`: a Slack incoming-webhook message.
//!
//! `text` is the plain fallback (the lead alert's headline, shown in notifications); each alert
//! is an attachment coloured red (page), orange (ticket) or green (resolved) whose blocks give the
//! SLO, the burn rates against the rule, the budget left, the time to exhaustion, links to the
//! worst traces and the top contributors. At most [`MAX_ALERTS`] alerts are shown (Slack caps a
//! message at 50 blocks); a last attachment says how many more there are.

use serde_json::{Value, json};

use super::super::render::{self, rfc3339, slo_url};
use crate::alert::{Alert, AlertStatus, Notification};

/// Colour of a firing page.
pub const RED: &str = "#d32f2f";
/// Colour of a firing ticket.
pub const ORANGE: &str = "#f57c00";
/// Colour of a resolved alert.
pub const GREEN: &str = "#2e7d32";
/// Alerts shown in one message.
pub const MAX_ALERTS: usize = 8;
/// Exemplars and contributors listed per alert.
pub const MAX_LISTED: usize = 5;

/// The Slack message of a notification.
pub fn payload(n: &Notification) -> Value {
    let mut text = n
        .lead()
        .map_or_else(|| "tracebudget: no alerts".to_owned(), render::headline);
    if n.alerts.len() > 1 {
        text.push_str(&format!(" (+{} more)", n.alerts.len() - 1));
    }
    let mut attachments: Vec<Value> = n.alerts.iter().take(MAX_ALERTS).map(|a| attachment(n, a)).collect();
    if n.alerts.len() > MAX_ALERTS {
        let more = n.alerts.len() - MAX_ALERTS;
        attachments.push(json!({
            "color": "#9e9e9e",
            "blocks": [context(format!("…and {more} more alerts in <{}|tracebudget>", url(&n.external_url)))],
        }));
    }
    json!({ "text": escape(&text), "attachments": attachments })
}

fn attachment(n: &Notification, a: &Alert) -> Value {
    let d = &a.detail;
    let color = match (a.status, d.severity.as_str()) {
        (AlertStatus::Resolved, _) => GREEN,
        (AlertStatus::Firing, "page") => RED,
        (AlertStatus::Firing, _) => ORANGE,
    };
    let mut head = format!(
        "*[{}] <{}|{}>*\n{}",
        render::tag(a),
        url(&slo_url(&n.external_url, &d.slo)),
        escape(&d.slo),
        escape(&render::burn_line(a))
    );
    if let Some(summary) = a.annotations.get("summary") {
        head.push('\n');
        head.push_str(&escape(summary));
    }
    let mut blocks = vec![
        json!({ "type": "section", "text": mrkdwn(head) }),
        json!({ "type": "section", "fields": [
            mrkdwn(format!("*Severity*\n{}", escape(&d.severity))),
            mrkdwn(format!("*Objective*\n{} (journey {})", render::objective(d.objective), escape(&d.journey))),
            mrkdwn(format!("*Budget remaining*\n{}", render::percent(d.budget_remaining))),
            mrkdwn(format!("*Time to exhaustion*\n{}", render::exhaustion(d))),
        ]}),
    ];
    if !d.exemplars.is_empty() {
        let mut s = "*Worst traces*".to_owned();
        for e in d.exemplars.iter().take(MAX_LISTED) {
            let id = match &e.url {
                Some(u) => format!("<{}|{}>", url(u), escape(&e.trace_id)),
                None => format!("`{}`", escape(&e.trace_id)),
            };
            s.push_str(&format!("\n• {id} {}", render::exemplar_facts(e)));
        }
        blocks.push(json!({ "type": "section", "text": mrkdwn(s) }));
    }
    if !d.contributors.is_empty() {
        let mut s = "*Top contributors*".to_owned();
        for c in d.contributors.iter().take(MAX_LISTED) {
            s.push_str(&format!(
                "\n• *{}* `{}`: {} of bad events ({}), {}",
                escape(&c.service),
                escape(&c.operation),
                render::percent(c.share),
                c.bad_events,
                escape(&c.reason)
            ));
        }
        blocks.push(json!({ "type": "section", "text": mrkdwn(s) }));
    }
    let mut when = format!("started {}", rfc3339(a.starts_at));
    if let Some(end) = a.ends_at {
        when.push_str(&format!(" · resolved {}", rfc3339(end)));
    }
    blocks.push(context(when));
    json!({ "color": color, "fallback": escape(&render::headline(a)), "blocks": blocks })
}

pub(super) fn mrkdwn(text: String) -> Value {
    json!({ "type": "mrkdwn", "text": text })
}

pub(super) fn context(text: String) -> Value {
    json!({ "type": "context", "elements": [mrkdwn(text)] })
}

/// Slack's three control characters in message text.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A URL inside `<…|…>`: the characters that would end the link are percent-encoded.
pub(super) fn url(u: &str) -> String {
    u.replace('|', "%7C")
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace(' ', "%20")
}

#[cfg(test)]
mod tests {
    use super::super::super::fixture;
    use super::*;

    #[test]
    fn exact_message() {
        let want = json!({
            "text": "[PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) &gt; 14.4 (+1 more)",
            "attachments": [
                {
                    "color": "#d32f2f",
                    "fallback": "[PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) &gt; 14.4",
                    "blocks": [
                        { "type": "section", "text": { "type": "mrkdwn", "text":
                            "*[PAGE FIRING] <http://127.0.0.1:8080/slos/checkout-latency|checkout-latency>*\n\
                             burn 14.9× (1h) / 15.2× (5m) &gt; 14.4\n\
                             checkout-latency burns its error budget 14.9 times too fast" } },
                        { "type": "section", "fields": [
                            { "type": "mrkdwn", "text": "*Severity*\npage" },
                            { "type": "mrkdwn", "text": "*Objective*\n99.9% (journey checkout)" },
                            { "type": "mrkdwn", "text": "*Budget remaining*\n42.0%" },
                            { "type": "mrkdwn", "text": "*Time to exhaustion*\n2h54m" }
                        ] },
                        { "type": "section", "text": { "type": "mrkdwn", "text":
                            "*Worst traces*\n\
                             • <https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736|4bf92f3577b34da6a3ce929d0e0e4736> 2.5s, error\n\
                             • `00f067aa0ba902b700f067aa0ba902b7` 1.25s" } },
                        { "type": "section", "text": { "type": "mrkdwn", "text":
                            "*Top contributors*\n\
                             • *payments* `POST /charge`: 62.0% of bad events (31), error originated here\n\
                             • *inventory* `reserve`: 38.0% of bad events (19), slowest child span" } },
                        { "type": "context", "elements": [
                            { "type": "mrkdwn", "text": "started 2025-03-01T12:00:00Z" }
                        ] }
                    ]
                },
                {
                    "color": "#2e7d32",
                    "fallback": "[TICKET RESOLVED] checkout-latency: burn 0.8× (3d) / 0.3× (6h), threshold 1",
                    "blocks": [
                        { "type": "section", "text": { "type": "mrkdwn", "text":
                            "*[TICKET RESOLVED] <http://127.0.0.1:8080/slos/checkout-latency|checkout-latency>*\n\
                             burn 0.8× (3d) / 0.3× (6h), threshold 1\n\
                             checkout-latency burned its error budget 1.2 times too fast" } },
                        { "type": "section", "fields": [
                            { "type": "mrkdwn", "text": "*Severity*\nticket" },
                            { "type": "mrkdwn", "text": "*Objective*\n99.9% (journey checkout)" },
                            { "type": "mrkdwn", "text": "*Budget remaining*\n42.0%" },
                            { "type": "mrkdwn", "text": "*Time to exhaustion*\nnot at the current burn rate" }
                        ] },
                        { "type": "context", "elements": [
                            { "type": "mrkdwn", "text": "started 2025-02-27T08:00:00Z · resolved 2025-03-01T11:30:00.25Z" }
                        ] }
                    ]
                }
            ]
        });
        assert_eq!(payload(&fixture::notification()), want);
    }

    #[test]
    fn colours() {
        let mut n = fixture::notification();
        n.alerts[1].status = AlertStatus::Firing;
        n.alerts[1].ends_at = None;
        let p = payload(&n);
        assert_eq!(p["attachments"][0]["color"], RED);
        assert_eq!(p["attachments"][1]["color"], ORANGE);
    }

    #[test]
    fn long_groups_are_cut() {
        let mut n = fixture::notification();
        let page = n.alerts[0].clone();
        n.alerts = vec![page; MAX_ALERTS + 3];
        let p = payload(&n);
        let attachments = p["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), MAX_ALERTS + 1);
        let blocks: usize = attachments.iter().map(|a| a["blocks"].as_array().unwrap().len()).sum();
        assert!(blocks <= 50, "{blocks} blocks");
        assert_eq!(
            attachments[MAX_ALERTS]["blocks"][0]["elements"][0]["text"],
            "…and 3 more alerts in <http://127.0.0.1:8080|tracebudget>"
        );
    }

    #[test]
    fn user_text_cannot_inject_links() {
        let mut n = fixture::notification();
        n.alerts[0]
            .annotations
            .insert("summary".into(), "<!channel> & <http://evil|click>".into());
        let head = payload(&n)["attachments"][0]["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            head.ends_with("\n&lt;!channel&gt; &amp; &lt;http://evil|click&gt;"),
            "{head}"
        );
    }
}
