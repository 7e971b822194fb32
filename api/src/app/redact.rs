//! A config text with every secret replaced by `<redacted>`, as `GET /api/v1/config` serves the
//! file in force (`http/config.rs`) and `tracebudget check` quotes the line of an error.
//!
//! Redacted, found through toml's spans over the source text (so the rest of the file reads
//! exactly as written, line for line):
//! - the value of every key named `api_token`, `token`, `bearer_token`, `password`, `secret`,
//!   `authorization`, `routing_key` (or ending in `_token`, `_password`, `_secret`) and every
//!   value under a `headers` table;
//! - in every other string that is a URL, all but what [`slis::config::redact_url`] shows
//!   (scheme, host and port; a database URL's user name and path):
//!   `https://hooks.slack.com/<redacted>`, `postgres://tb:<redacted>@db:5432/tb`;
//! - the text of every comment (`# <redacted>`): a comment can hold anything, an old token or a
//!   commented-out webhook URL, and nothing tells a harmless one apart.
//!
//! `tracebudget check` shows URLs through the same [`slis::config::redact_url`].

use std::ops::Range;

use slis::config::redact_url;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use toml_parser::lexer::TokenKind;

pub use slis::config::REDACTED;

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
    Redacted::new(text).text
}

/// A config text with its secrets replaced, and where: `check` quotes the line of a config error
/// from it, its caret moved to the redacted text.
#[derive(Debug)]
pub struct Redacted {
    /// The redacted text.
    pub text: String,
    /// (range in the original, its replacement): sorted, disjoint, on character boundaries.
    edits: Vec<(Range<usize>, String)>,
}

impl Redacted {
    /// Also for a text that is not valid TOML: what toml recovers of it is redacted.
    pub fn new(original: &str) -> Redacted {
        let mut found: Vec<(Range<usize>, String)> = Vec::new();
        let (root, _errors) = DeTable::parse_recoverable(original);
        table(root.get_ref(), false, &mut found);
        for token in toml_parser::Source::new(original).lex() {
            let span = token.span();
            let comment = original.get(span.start()..span.end()).unwrap_or("");
            if token.kind() == TokenKind::Comment && !comment.get(1..).unwrap_or("").trim().is_empty() {
                found.push((span.start()..span.end(), format!("# {REDACTED}")));
            }
        }
        found.sort_by_key(|(r, _)| r.start);
        let mut edits = Vec::with_capacity(found.len());
        let mut text = String::with_capacity(original.len());
        let mut at = 0;
        for (range, with) in found {
            let fits = range.start >= at
                && range.end <= original.len()
                && original.is_char_boundary(range.start)
                && original.is_char_boundary(range.end);
            if !fits {
                continue; // inside an edit already made
            }
            // A value over several lines stays over as many, so every line number still holds.
            let lines = original[range.clone()].matches('\n').count();
            let with = match with.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
                Some(inner) if lines > 0 => format!("\"\"\"{}{inner}\"\"\"", "\n".repeat(lines)),
                _ => with,
            };
            text.push_str(&original[at..range.start]);
            text.push_str(&with);
            at = range.end;
            edits.push((range, with));
        }
        text.push_str(&original[at..]);
        Redacted { text, edits }
    }

    /// Where a byte offset of the original lies in the redacted text (inside a replaced value:
    /// the start of its replacement).
    pub fn offset(&self, original: usize) -> usize {
        let mut shift: isize = 0;
        for (range, with) in &self.edits {
            if range.end <= original {
                shift += with.len() as isize - range.len() as isize;
            } else if range.start < original {
                return (range.start as isize + shift) as usize;
            } else {
                break;
            }
        }
        (original as isize + shift) as usize
    }
}

fn table(t: &DeTable<'_>, secret: bool, edits: &mut Vec<(Range<usize>, String)>) {
    for (k, v) in t {
        value(v, secret || is_secret_key(k.get_ref()), edits);
    }
}

fn value(v: &Spanned<DeValue<'_>>, secret: bool, edits: &mut Vec<(Range<usize>, String)>) {
    match v.get_ref() {
        DeValue::Table(t) => table(t, secret, edits),
        DeValue::Array(items) => {
            for item in items {
                value(item, secret, edits);
            }
        }
        _ if secret => edits.push((v.span(), quote(REDACTED))),
        DeValue::String(s) => {
            let shown = redact_url(s);
            if shown != **s {
                edits.push((v.span(), quote(&shown)));
            }
        }
        _ => {}
    }
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

    /// Issue 18: a webhook URL's path and query, and a token in a comment, were served as written.
    #[test]
    fn secrets_are_redacted_and_the_rest_reads_as_written() {
        let text = r#"# shop config
# token xoxb-COMMENT
[server]
listen = "127.0.0.1:8080"
api_token = "tok-SERVER"   # keep me
# api_token = "tok-COMMENTED"
#
# old url https://hooks.slack.com/services/T/B/COMMENT

[storage]
url = "postgres://tb:pw-STORAGE@db.example:5432/tb?sslmode=require&password=pw-QUERY"

[alerting]
trace_url = "https://jaeger.example/trace/{trace_id}?key=tok-TRACE"

[[journeys]]
name = "shop # not a comment"
matcher = 'http.url =~ "https://x/#"'

[[receivers]]
name = "hook"
webhook = { url = "https://user:pw-URL@hooks.slack.com/services/T000/B000/SECRETXYZ", headers = { Authorization = "Bearer tok-HEADER", "X-Key" = 'tok-LITERAL' }, routing_key = "tok-ROUTING", bearer_token = """
tok-MULTILINE""" }

[[receivers]]
name = "am"
alertmanager.url = "http://127.0.0.1:9093"

[[receivers]]
name = "mail"
email.password = "pw-EMAIL"
email.username = "tracebudget"
email.smarthost = "smtp.example:587"
"#;
        let got = redact(text);
        let want = r#"# <redacted>
# <redacted>
[server]
listen = "127.0.0.1:8080"
api_token = "<redacted>"   # <redacted>
# <redacted>
#
# <redacted>

[storage]
url = "postgres://tb:<redacted>@db.example:5432/tb?<redacted>"

[alerting]
trace_url = "https://jaeger.example/<redacted>"

[[journeys]]
name = "shop # not a comment"
matcher = 'http.url =~ "https://x/#"'

[[receivers]]
name = "hook"
webhook = { url = "https://<redacted>@hooks.slack.com/<redacted>", headers = { Authorization = "<redacted>", "X-Key" = "<redacted>" }, routing_key = "<redacted>", bearer_token = """
<redacted>""" }

[[receivers]]
name = "am"
alertmanager.url = "http://127.0.0.1:9093"

[[receivers]]
name = "mail"
email.password = "<redacted>"
email.username = "tracebudget"
email.smarthost = "smtp.example:587"
"#;
        assert_eq!(got, want);
        assert!(DeTable::parse(&got).is_ok(), "the redacted text is still TOML");
        assert_eq!(got.lines().count(), text.lines().count(), "line numbers still hold");
    }
}
