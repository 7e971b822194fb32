//! `email`: one message per notification over SMTP (lettre), to every recipient at once.
//!
//! `tls = "starttls"` requires STARTTLS before anything else is sent (no downgrade), `"tls"` is
//! implicit TLS (SMTPS, port 465), `"none"` is plain text for local relays. Credentials are sent
//! when `username` and `password` are set. The server certificate is checked against the system's
//! roots plus [`NotifierOptions::extra_root_pem`].
//!
//! The message: `Subject` is the lead alert's headline, e.g.
//! `[PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) > 14.4` (`(+N more)` when the
//! group has more alerts), `Message-ID: <{id}@tracebudget>`, and a `multipart/alternative` body
//! whose plain-text and HTML parts state the same facts; every value is HTML-escaped. Report
//! digests go out the same way ([`EmailNotifier::send_report`], bodies in
//! [`super::email_report`]).
//!
//! One attempt gives up after [`NotifierOptions::email_timeout`], the whole SMTP exchange
//! included. Transient SMTP replies (4xx), timeouts and connection or TLS failures are retried; permanent
//! replies (5xx) and client-side refusals (e.g. no STARTTLS offered) are not.

use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::delivery::{Delivery, NotifierOptions, NotifyError};
use super::email_report;
use super::render::{self, rfc3339, slo_url};
use crate::alert::{Alert, AlertStatus, Notification};
use crate::report::Digest;
use config::{EmailConfig, TlsMode};

pub mod config;

/// Sends notifications by email through one SMTP server.
pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    host: String,
    port: u16,
    tls: TlsMode,
    auth: bool,
    timeout: Duration,
}

impl fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("from", &self.from.to_string())
            .field("to", &self.to.iter().map(|m| m.to_string()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl EmailNotifier {
    /// Parses the addresses and the smarthost (`host:port`, `[v6]:port`, or a bare host on the
    /// mode's port: 587 starttls, 465 tls, 25 none) and sets up TLS; connects only on `send`.
    pub fn new(config: &EmailConfig, options: &NotifierOptions) -> Result<Self, NotifyError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| NotifyError::Address(config.from.clone()))?;
        let to = config
            .to
            .iter()
            .map(|t| t.parse::<Mailbox>().map_err(|_| NotifyError::Address(t.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(NotifyError::NoRecipient);
        }
        let (host, port) = smarthost(&config.smarthost, config.tls)?;

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(options.email_timeout));
        if config.tls != TlsMode::None {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(pem) = &options.extra_root_pem {
                let cert = Certificate::from_pem(pem).map_err(|_| NotifyError::Tls("bad PEM".into()))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build().map_err(|e| NotifyError::Tls(e.to_string()))?;
            builder = builder.tls(match config.tls {
                TlsMode::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        let auth = match (&config.username, &config.password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                true
            }
            (None, None) => false,
            _ => return Err(NotifyError::Credentials),
        };
        Ok(EmailNotifier {
            transport: builder.build(),
            from,
            to,
            host,
            port,
            tls: config.tls,
            auth,
            timeout: options.email_timeout,
        })
    }

    /// The message of a notification, as it is sent.
    pub fn message(&self, n: &Notification) -> Result<Message, lettre::error::Error> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject(n))
            .message_id(Some(message_id(&n.id)));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder.multipart(MultiPart::alternative_plain_html(text_body(n), html_body(n)))
    }

    /// The message of a report digest, as it is sent; see [`super::email_report`].
    pub fn report_message(&self, d: &Digest) -> Result<Message, lettre::error::Error> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(email_report::subject(d))
            .message_id(Some(message_id(&d.id)));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder.multipart(MultiPart::alternative_plain_html(
            email_report::text_body(d),
            email_report::html_body(d),
        ))
    }

    /// Makes one delivery attempt.
    pub async fn send(&self, n: &Notification) -> Delivery {
        self.deliver(self.message(n)).await
    }

    /// Makes one delivery attempt of a report digest.
    pub async fn send_report(&self, d: &Digest) -> Delivery {
        self.deliver(self.report_message(d)).await
    }

    async fn deliver(&self, message: Result<Message, lettre::error::Error>) -> Delivery {
        let message = match message {
            Ok(m) => m,
            Err(_) => return Delivery::give_up("cannot build the email"),
        };
        // lettre's own timeout covers only the connect; this one covers the whole exchange.
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Delivery::Delivered,
            Ok(Err(e)) => classify(&e),
            Err(_) => Delivery::retry(format!("smtp timed out after {}", render::duration(self.timeout))),
        }
    }
}

/// `host:port`, `[v6]:port`, or a bare host on the port of the TLS mode.
fn smarthost(s: &str, tls: TlsMode) -> Result<(String, u16), NotifyError> {
    let bad = || NotifyError::Smarthost(s.to_owned());
    let default_port = match tls {
        TlsMode::Starttls => 587,
        TlsMode::Tls => 465,
        TlsMode::None => 25,
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match s.split_once(':') {
            Some((_, port)) if port.contains(':') => return Err(bad()),
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

/// Never the server's text (it may echo the user name): the reply code and its class, lettre's
/// own fixed message for a client-side refusal, or the I/O error kind.
fn classify(e: &lettre::transport::smtp::Error) -> Delivery {
    use std::error::Error as _;
    if let Some(code) = e.status() {
        return if e.is_permanent() {
            Delivery::give_up(format!("smtp {code} permanent"))
        } else {
            Delivery::retry(format!("smtp {code} transient"))
        };
    }
    if e.is_client() {
        // e.g. "STARTTLS is not supported on this server": a configuration mismatch.
        return match e.source() {
            Some(why) => Delivery::give_up(format!("smtp client error: {why}")),
            None => Delivery::give_up("smtp client error"),
        };
    }
    let what = if e.is_timeout() {
        "smtp timeout"
    } else if e.is_tls() {
        "smtp tls error"
    } else {
        "smtp connection error"
    };
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            // A failed TLS handshake says why (rustls: "invalid peer certificate: UnknownIssuer").
            return match io.get_ref() {
                Some(inner) if io.kind() == std::io::ErrorKind::InvalidData => {
                    Delivery::retry(format!("{what}: {inner}"))
                }
                _ => Delivery::retry(format!("{what}: {}", io.kind())),
            };
        }
        source = s.source();
    }
    Delivery::retry(what)
}

/// `<{id}@tracebudget>`; characters not allowed in a message id (and `=`) are written `=XX`.
pub fn message_id(id: &str) -> String {
    let mut out = String::from("<");
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$%&'*+-/?^_`{|}~.".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "={b:02X}");
        }
    }
    out.push_str("@tracebudget>");
    out
}

/// The lead alert's headline, and how many more alerts the group holds.
pub fn subject(n: &Notification) -> String {
    let Some(lead) = n.lead() else {
        return format!("[tracebudget] {}", n.receiver);
    };
    let mut s = render::headline(lead);
    if n.alerts.len() > 1 {
        let _ = write!(s, " (+{} more)", n.alerts.len() - 1);
    }
    s
}

/// The facts of one alert, in the order both bodies show them.
fn facts(n: &Notification, a: &Alert) -> Vec<(&'static str, String)> {
    let d = &a.detail;
    let status = match (a.status, a.ends_at) {
        (AlertStatus::Firing, _) => format!("firing since {}", rfc3339(a.starts_at)),
        (AlertStatus::Resolved, Some(end)) => {
            format!("resolved at {} (firing since {})", rfc3339(end), rfc3339(a.starts_at))
        }
        (AlertStatus::Resolved, None) => format!("resolved (firing since {})", rfc3339(a.starts_at)),
    };
    let mut facts = vec![
        ("Status", status),
        ("SLO", d.slo.clone()),
        ("Journey", d.journey.clone()),
        ("Objective", render::objective(d.objective)),
        ("Severity", d.severity.clone()),
        (
            "Burn rate",
            format!(
                "{} over {}, {} over {} (threshold {})",
                render::burn(d.burn_long),
                render::window(d.long_window),
                render::burn(d.burn_short),
                render::window(d.short_window),
                render::number(d.factor)
            ),
        ),
        ("Budget remaining", render::percent(d.budget_remaining)),
        ("Time to exhaustion", render::exhaustion(d)),
    ];
    for (key, name) in [("summary", "Summary"), ("description", "Description")] {
        if let Some(v) = a.annotations.get(key) {
            facts.push((name, v.clone()));
        }
    }
    let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    facts.push(("Labels", labels.join(", ")));
    facts.push(("SLO page", slo_url(&n.external_url, &d.slo)));
    facts
}

/// The plain-text part.
pub fn text_body(n: &Notification) -> String {
    let mut out = format!("{}\n", subject(n));
    for (i, a) in n.alerts.iter().enumerate() {
        let _ = write!(
            out,
            "\n== Alert {} of {}: {} ==\n",
            i + 1,
            n.alerts.len(),
            render::headline(a)
        );
        for (name, value) in facts(n, a) {
            let _ = writeln!(out, "{:<20}{value}", format!("{name}:"));
        }
        if !a.detail.exemplars.is_empty() {
            out.push_str("Worst traces:\n");
            for e in &a.detail.exemplars {
                let _ = write!(out, "  - {} ({})", e.trace_id, render::exemplar_facts(e));
                if let Some(url) = &e.url {
                    let _ = write!(out, " {url}");
                }
                out.push('\n');
            }
        }
        if !a.detail.contributors.is_empty() {
            out.push_str("Top contributors:\n");
            for c in &a.detail.contributors {
                let _ = writeln!(out, "  - {}", render::contributor(c));
            }
        }
    }
    let _ = write!(out, "\n-- \ntracebudget {} (notification {})\n", n.external_url, n.id);
    out
}

/// The HTML part: the same facts as [`text_body`], every value escaped.
pub fn html_body(n: &Notification) -> String {
    use render::html as h;
    let mut out = String::from("<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n");
    let _ = writeln!(out, "<h2>{}</h2>", h(&subject(n)));
    for (i, a) in n.alerts.iter().enumerate() {
        let color = match (a.status, a.detail.severity.as_str()) {
            (AlertStatus::Resolved, _) => "#2e7d32",
            (AlertStatus::Firing, "page") => "#d32f2f",
            (AlertStatus::Firing, _) => "#f57c00",
        };
        let _ = writeln!(
            out,
            "<h3 style=\"color: {color}\">Alert {} of {}: {}</h3>\n<table>",
            i + 1,
            n.alerts.len(),
            h(&render::headline(a))
        );
        for (name, value) in facts(n, a) {
            let value = if name == "SLO page" {
                format!("<a href=\"{0}\">{0}</a>", h(&value))
            } else {
                h(&value)
            };
            let _ = writeln!(out, "<tr><th align=\"left\">{name}</th><td>{value}</td></tr>");
        }
        out.push_str("</table>\n");
        if !a.detail.exemplars.is_empty() {
            out.push_str("<h4>Worst traces</h4>\n<ul>\n");
            for e in &a.detail.exemplars {
                let id = match &e.url {
                    Some(url) => format!("<a href=\"{}\">{}</a>", h(url), h(&e.trace_id)),
                    None => format!("<code>{}</code>", h(&e.trace_id)),
                };
                let _ = writeln!(out, "<li>{id} ({})</li>", h(&render::exemplar_facts(e)));
            }
            out.push_str("</ul>\n");
        }
        if !a.detail.contributors.is_empty() {
            out.push_str("<h4>Top contributors</h4>\n<ul>\n");
            for c in &a.detail.contributors {
                let _ = writeln!(out, "<li>{}</li>", h(&render::contributor(c)));
            }
            out.push_str("</ul>\n");
        }
    }
    let _ = writeln!(
        out,
        "<p style=\"color: #777\"><a href=\"{0}\">tracebudget</a> (notification {1})</p>\n</body></html>",
        h(&n.external_url),
        h(&n.id)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn subjects() {
        let mut n = fixture::notification();
        assert_eq!(
            subject(&n),
            "[PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) > 14.4 (+1 more)"
        );
        n.alerts.remove(0);
        assert_eq!(
            subject(&n),
            "[TICKET RESOLVED] checkout-latency: burn 0.8× (3d) / 0.3× (6h), threshold 1"
        );
    }

    #[test]
    fn message_ids() {
        for (id, want) in [
            ("01JN6Q3Z8K4W2V5X7Y9A0B1C2D", "<01JN6Q3Z8K4W2V5X7Y9A0B1C2D@tracebudget>"),
            ("a b=c<d>@e", "<a=20b=3Dc=3Cd=3E=40e@tracebudget>"),
        ] {
            assert_eq!(message_id(id), want);
        }
    }

    #[test]
    fn smarthosts() {
        let ok =
            |s: &str, tls, host: &str, port| assert_eq!(smarthost(s, tls).unwrap(), (host.to_owned(), port), "{s}");
        ok("smtp.example.com:2525", TlsMode::Starttls, "smtp.example.com", 2525);
        ok("smtp.example.com", TlsMode::Starttls, "smtp.example.com", 587);
        ok("smtp.example.com", TlsMode::Tls, "smtp.example.com", 465);
        ok("127.0.0.1", TlsMode::None, "127.0.0.1", 25);
        ok("[::1]:25", TlsMode::Starttls, "::1", 25);
        ok("[::1]", TlsMode::Tls, "::1", 465);
        for bad in ["", ":25", "h:", "h:0", "h:99999", "::1:25", "[::1", "[::1]25", "h:x"] {
            assert!(smarthost(bad, TlsMode::Starttls).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn text_body_states_the_facts() {
        let text = text_body(&fixture::notification());
        let want = "\
[PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) > 14.4 (+1 more)

== Alert 1 of 2: [PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) > 14.4 ==
Status:             firing since 2025-03-01T12:00:00Z
SLO:                checkout-latency
Journey:            checkout
Objective:          99.9%
Severity:           page
Burn rate:          14.9× over 1h, 15.2× over 5m (threshold 14.4)
Budget remaining:   42.0%
Time to exhaustion: 2h54m
Summary:            checkout-latency burns its error budget 14.9 times too fast
Description:        99.9% of checkouts finish within 800ms
Labels:             alertname=SLOBurnRate, journey=checkout, severity=page, slo=checkout-latency, team=payments
SLO page:           http://127.0.0.1:8080/slos/checkout-latency
Worst traces:
  - 4bf92f3577b34da6a3ce929d0e0e4736 (2.5s, error) https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736
  - 00f067aa0ba902b700f067aa0ba902b7 (1.25s)
Top contributors:
  - payments POST /charge: 62.0% of bad events (31), error originated here
  - inventory reserve: 38.0% of bad events (19), slowest child span

== Alert 2 of 2: [TICKET RESOLVED] checkout-latency: burn 0.8× (3d) / 0.3× (6h), threshold 1 ==
Status:             resolved at 2025-03-01T11:30:00.25Z (firing since 2025-02-27T08:00:00Z)
SLO:                checkout-latency
Journey:            checkout
Objective:          99.9%
Severity:           ticket
Burn rate:          0.8× over 3d, 0.3× over 6h (threshold 1)
Budget remaining:   42.0%
Time to exhaustion: not at the current burn rate
Summary:            checkout-latency burned its error budget 1.2 times too fast
Description:        99.9% of checkouts finish within 800ms
Labels:             alertname=SLOBurnRate, journey=checkout, severity=ticket, slo=checkout-latency, team=payments
SLO page:           http://127.0.0.1:8080/slos/checkout-latency

-- 
tracebudget http://127.0.0.1:8080 (notification 01JN6Q3Z8K4W2V5X7Y9A0B1C2D)
";
        assert_eq!(text, want);
    }

    #[test]
    fn html_body_escapes_every_value() {
        let mut n = fixture::notification();
        let evil = "<script>alert('x')</script> & \"more\"";
        n.alerts[0].labels.insert("team".into(), evil.into());
        n.alerts[0].annotations.insert("summary".into(), evil.into());
        n.alerts[0].detail.contributors[0].operation = "<b>POST</b>".into();
        n.alerts[0].detail.exemplars[0].url = Some("https://t/x?a=1&b=\"2\"".into());
        let html = html_body(&n);
        assert!(!html.contains("<script>") && !html.contains("<b>"), "{html}");
        assert!(html.contains("team=&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;"));
        assert!(html.contains("<tr><th align=\"left\">Summary</th><td>&lt;script&gt;"));
        assert!(html.contains("payments &lt;b&gt;POST&lt;/b&gt;: 62.0% of bad events (31)"));
        assert!(html.contains("<a href=\"https://t/x?a=1&amp;b=&quot;2&quot;\">4bf92f3577b34da6a3ce929d0e0e4736</a>"));
    }

    #[test]
    fn html_body_carries_the_same_facts() {
        let n = fixture::notification();
        let html = html_body(&n);
        for a in &n.alerts {
            for (name, value) in facts(&n, a) {
                assert!(
                    html.contains(&format!("<th align=\"left\">{name}</th><td>"))
                        && html.contains(&render::html(&value)),
                    "{name}: {value}"
                );
            }
        }
        assert!(html.contains("<li><a href=\"https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736\">"));
        assert!(html.contains("<li>inventory reserve: 38.0% of bad events (19), slowest child span</li>"));
    }

    #[test]
    fn construction_errors() {
        let config = |from: &str, smarthost: &str, user: Option<&str>, password: Option<&str>| EmailConfig {
            to: vec!["oncall@example.com".into()],
            from: from.into(),
            smarthost: smarthost.into(),
            tls: TlsMode::Starttls,
            username: user.map(Into::into),
            password: password.map(Into::into),
        };
        let o = NotifierOptions::default();
        assert!(EmailNotifier::new(&config("tb@example.com", "h:25", Some("u"), Some("p")), &o).is_ok());
        assert!(matches!(
            EmailNotifier::new(&config("not an address", "h:25", None, None), &o),
            Err(NotifyError::Address(_))
        ));
        assert!(matches!(
            EmailNotifier::new(&config("tb@example.com", "h:x", None, None), &o),
            Err(NotifyError::Smarthost(_))
        ));
        let e = EmailNotifier::new(&config("tb@example.com", "h:25", Some("u"), None), &o).unwrap_err();
        assert!(matches!(e, NotifyError::Credentials));
        let n = EmailNotifier::new(&config("tb@example.com", "h:25", Some("u"), Some("hunter2")), &o).unwrap();
        assert!(!format!("{n:?}").contains("hunter2"));
    }
}
