//! `GET /api/v1/config`: the config file in force, with every secret value replaced by
//! `"<redacted>"`, its SHA-256 and what it defines.
//!
//! Redacted, found through toml's spans over the source text (so the rest of the file reads
//! exactly as written, comments included): the value of every key named `api_token`, `token`,
//! `bearer_token`, `password`, `secret`, `authorization`, `routing_key` (or ending in `_token`,
//! `_password`, `_secret`), every value under a `headers` table, and the password of any URL
//! (`postgres://user:<redacted>@host/db`). A commented-out line that parses as TOML
//! (`# api_token = "…"`) is redacted the same way.

use std::ops::Range;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::AppState;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/config", get(show))
}

async fn show(State(state): State<AppState>) -> Json<Value> {
    let config = state.config();
    Json(json!({
        "sha256": config.source.sha256,
        "file": config.source.file,
        "text": redact(&config.source.text),
        "journeys": config.journeys.0.len(),
        "slos": config.alerting.slos.len(),
    }))
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(
        key.as_str(),
        "api_token" | "token" | "bearer_token" | "password" | "secret" | "authorization" | "routing_key" | "headers"
    ) || key.ends_with("_token")
        || key.ends_with("_password")
        || key.ends_with("_secret")
}

/// The config text with its secrets replaced (see the module docs).
pub fn redact(text: &str) -> String {
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    if let Ok(root) = DeTable::parse(text) {
        table(root.get_ref(), false, 0, &mut edits);
    }
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(body) = trimmed.strip_prefix('#')
            && let Ok(t) = DeTable::parse(body)
        {
            table(t.get_ref(), false, offset + line.len() - trimmed.len() + 1, &mut edits);
        }
        offset += line.len();
    }
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, with) in edits {
        if range.start < at || range.end > text.len() {
            continue; // inside an edit already made
        }
        out.push_str(&text[at..range.start]);
        out.push_str(&with);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

fn table(t: &DeTable<'_>, secret: bool, base: usize, edits: &mut Vec<(Range<usize>, String)>) {
    for (k, v) in t {
        value(v, secret || is_secret_key(k.get_ref()), base, edits);
    }
}

fn value(v: &Spanned<DeValue<'_>>, secret: bool, base: usize, edits: &mut Vec<(Range<usize>, String)>) {
    let span = v.span().start + base..v.span().end + base;
    match v.get_ref() {
        DeValue::Table(t) => table(t, secret, base, edits),
        DeValue::Array(items) => {
            for item in items {
                value(item, secret, base, edits);
            }
        }
        _ if secret => edits.push((span, quote(REDACTED))),
        DeValue::String(s) => {
            if let Some(url) = redact_url(s) {
                edits.push((span, quote(&url)));
            }
        }
        _ => {}
    }
}

/// The URL with its password replaced, when it has one.
fn redact_url(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, _) = rest[..authority_end].rsplit_once('@')?;
    let (user, _password) = userinfo.split_once(':')?;
    let after = &rest[userinfo.len()..];
    Some(format!("{scheme}://{user}:{REDACTED}{after}"))
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_the_rest_reads_as_written() {
        let text = r#"# shop config
[server]
listen = "127.0.0.1:8080"
api_token = "tok-SERVER"   # keep me
# api_token = "tok-COMMENTED"

[storage]
url = "postgres://tb:pw-STORAGE@db.example:5432/tb"

[[receivers]]
name = "hook"
webhook = { url = "https://user:pw-URL@hooks.example/x?a=b", headers = { Authorization = "Bearer tok-HEADER", "X-Key" = 'tok-LITERAL' }, routing_key = "tok-ROUTING", bearer_token = """
tok-MULTILINE""" }

[[receivers]]
name = "mail"
email.password = "pw-EMAIL"
email.username = "tracebudget"
email.smarthost = "smtp.example:587"
"#;
        let got = redact(text);
        let want = r#"# shop config
[server]
listen = "127.0.0.1:8080"
api_token = "<redacted>"   # keep me
# api_token = "<redacted>"

[storage]
url = "postgres://tb:<redacted>@db.example:5432/tb"

[[receivers]]
name = "hook"
webhook = { url = "https://user:<redacted>@hooks.example/x?a=b", headers = { Authorization = "<redacted>", "X-Key" = "<redacted>" }, routing_key = "<redacted>", bearer_token = "<redacted>" }

[[receivers]]
name = "mail"
email.password = "<redacted>"
email.username = "tracebudget"
email.smarthost = "smtp.example:587"
"#;
        assert_eq!(got, want);
        assert!(DeTable::parse(&got).is_ok(), "the redacted text is still TOML");
        for (url, want) in [
            ("sqlite://tracebudget.db", None),
            ("https://user@host/x", None),
            ("https://host/a:b@c", None),
            ("nats://u:p@h:4222", Some("nats://u:<redacted>@h:4222")),
        ] {
            assert_eq!(redact_url(url).as_deref(), want, "{url}");
        }
    }
}
