//! `[privacy]`: which attribute values may be kept or shown, and the redaction rules applied to
//! span-derived text wherever it leaves the engine — the contributors of alerts (notifications,
//! outbox and history rows, reports, replay), the trace-health API and `/metrics`, the names a
//! JetStream snapshot stores, and every log line of the process.
//!
//! The rules themselves are [`slis::privacy`]; this module parses and validates the section,
//! counts the replacements in `/metrics` (`tracebudget_redactions_total{rule}`) and redacts logs.

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use serde::Deserialize;
use slis::config::ConfigError;
use slis::privacy::{BUILTIN_NAMES, DEFAULT_ALLOW_LIST, DEFAULT_BUILTINS, Redactor, Rule};
use toml::Spanned;

/// `[privacy]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Attribute keys whose values may be kept beyond the request that carried them, or shown.
    /// Default `["peer.service"]` (trace health names the callee a call lost). The keys journeys
    /// and error rules match on are read while the request is matched and never kept, so they
    /// need not be listed; the values of every other attribute are never read at all.
    pub attribute_allow_list: Vec<Spanned<String>>,
    /// Built-in rules in force, in order: `email`, `bearer_token`, `ipv4`, `credit_card`.
    /// Default `["email", "bearer_token"]`; `[]` turns them all off.
    pub redact: Vec<Spanned<String>>,
    /// Rules of your own, applied after the built-in ones, in order.
    pub rules: Vec<RuleConfig>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            attribute_allow_list: DEFAULT_ALLOW_LIST
                .iter()
                .map(|k| Spanned::new(0..0, (*k).to_owned()))
                .collect(),
            redact: DEFAULT_BUILTINS
                .iter()
                .map(|k| Spanned::new(0..0, (*k).to_owned()))
                .collect(),
            rules: Vec::new(),
        }
    }
}

/// `[[privacy.rules]]`: one regular expression and what replaces each match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The `rule` label of `tracebudget_redactions_total`; unique, not a built-in name.
    pub name: Spanned<String>,
    /// A regular expression (Rust `regex` syntax, no look-around), e.g. `"cust-[0-9]+"`.
    pub pattern: Spanned<String>,
    /// Literal text put in place of each match (`$` has no special meaning). Default `[redacted]`.
    #[serde(default = "default_replacement")]
    pub replacement: String,
}

fn default_replacement() -> String {
    "[redacted]".to_owned()
}

/// `[privacy]` validated.
#[derive(Debug, Clone)]
pub struct Privacy {
    /// Attribute keys whose values may be kept or shown.
    pub allow_list: Vec<String>,
    /// The rules, compiled once; shared by everything that shows span-derived text.
    pub redactor: Arc<Redactor>,
}

impl Default for Privacy {
    fn default() -> Self {
        PrivacyConfig::default()
            .build()
            .expect("the default [privacy] is valid")
    }
}

impl Privacy {
    /// Whether values of `key` may be kept or shown.
    pub fn allows(&self, key: &str) -> bool {
        self.allow_list.iter().any(|k| k == key)
    }
}

impl PartialEq for Privacy {
    /// Same allow-list and same rules (for the reload's restart-only check).
    fn eq(&self, other: &Self) -> bool {
        self.allow_list == other.allow_list && *self.redactor == *other.redactor
    }
}

impl PrivacyConfig {
    /// Compiles the rules; every problem points at its value.
    pub fn build(&self) -> Result<Privacy, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut rules: Vec<Rule> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for name in &self.redact {
            if names.contains(name.get_ref()) {
                errors.push(ConfigError::at(
                    name.span(),
                    format!("privacy.redact lists {:?} twice", name.get_ref()),
                ));
                continue;
            }
            match Rule::builtin(name.get_ref()) {
                Some(rule) => {
                    names.push(name.get_ref().clone());
                    rules.push(rule);
                }
                None => errors.push(ConfigError::at(
                    name.span(),
                    format!(
                        "unknown built-in redaction rule {:?}, expected one of {} (write your own under [[privacy.rules]])",
                        name.get_ref(),
                        BUILTIN_NAMES.join(", ")
                    ),
                )),
            }
        }
        for r in &self.rules {
            let name = r.name.get_ref();
            if name.is_empty() {
                errors.push(ConfigError::at(r.name.span(), "privacy.rules name must not be empty"));
                continue;
            }
            if names.contains(name) || BUILTIN_NAMES.contains(&name.as_str()) {
                errors.push(ConfigError::at(
                    r.name.span(),
                    format!("privacy.rules name {name:?} is taken (by a built-in rule or another rule)"),
                ));
                continue;
            }
            match Rule::new(name, r.pattern.get_ref(), &r.replacement) {
                Ok(rule) => {
                    names.push(name.clone());
                    rules.push(rule);
                }
                Err(e) => errors.push(ConfigError::at(
                    r.pattern.span(),
                    format!("privacy.rules {name:?}: invalid pattern: {e}"),
                )),
            }
        }
        let mut allow_list: Vec<String> = Vec::new();
        for key in &self.attribute_allow_list {
            if key.get_ref().is_empty() {
                errors.push(ConfigError::at(
                    key.span(),
                    "privacy.attribute_allow_list holds an empty key",
                ));
            } else if !allow_list.contains(key.get_ref()) {
                allow_list.push(key.get_ref().clone());
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Privacy {
            allow_list,
            redactor: Arc::new(Redactor::new(rules)),
        })
    }
}

/// `tracebudget_redactions_total{rule}`, read from the redactor at scrape time.
#[derive(Debug)]
pub struct RedactionCollector(pub Arc<Redactor>);

impl Collector for RedactionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "redactions",
            "Replacements made by each [privacy] redaction rule in text kept or shown: alert contributors, trace-health names, snapshot names (each distinct string counted once), and log lines (every time)",
            None,
            MetricType::Counter,
        )?;
        for (rule, n) in self.0.counts() {
            ConstCounter::new(n).encode(family.encode_family(&[("rule", rule)])?)?;
        }
        Ok(())
    }
}

/// The rules log lines go through: the config's once `serve` has read it, the defaults before.
static LOG_REDACTOR: OnceLock<Arc<Redactor>> = OnceLock::new();

/// Makes every later log line of this process go through `redactor` (the first call wins).
pub fn redact_logs(redactor: Arc<Redactor>) {
    let _ = LOG_REDACTOR.set(redactor);
}

fn log_redactor() -> &'static Redactor {
    static DEFAULT: OnceLock<Redactor> = OnceLock::new();
    match LOG_REDACTOR.get() {
        Some(r) => r,
        None => DEFAULT.get_or_init(Redactor::default),
    }
}

/// A log writer that holds one formatted event and writes it to stderr redacted, in one write.
#[derive(Debug, Default)]
pub struct RedactingWriter(Vec<u8>);

impl std::io::Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let line = log_redactor().redact(&text);
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MakeRedactingWriter {
    type Writer = RedactingWriter;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::default()
    }
}

/// See [`RedactingWriter`].
#[derive(Debug, Default, Clone, Copy)]
pub struct MakeRedactingWriter;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Privacy, Vec<(String, String)>> {
        let c: PrivacyConfig = toml::from_str(text).map_err(|e| vec![(String::new(), e.message().to_owned())])?;
        c.build().map_err(|es| {
            es.into_iter()
                .map(|e| (text[e.span.unwrap()].to_owned(), e.message))
                .collect()
        })
    }

    #[test]
    fn defaults_redact_email_and_bearer_tokens_and_keep_peer_service() {
        let p = parse("").unwrap();
        assert_eq!(p.redactor.names(), ["email", "bearer_token"]);
        assert_eq!(p.allow_list, ["peer.service"]);
        assert!(p.allows("peer.service") && !p.allows("user.email"));
    }

    #[test]
    fn rules_in_order_builtins_first() {
        let p = parse(
            r#"
attribute_allow_list = []
redact = ["ipv4", "email"]
[[rules]]
name = "customer"
pattern = "cust-[0-9]+"
replacement = "[customer]"
[[rules]]
name = "order"
pattern = "ord-[0-9]+"
"#,
        )
        .unwrap();
        assert_eq!(p.redactor.names(), ["ipv4", "email", "customer", "order"]);
        assert_eq!(
            p.redactor.redact("cust-1 ord-2 10.0.0.1 a@b.io"),
            "[customer] [redacted] [ipv4] [email]"
        );
        assert!(p.allow_list.is_empty());
    }

    #[test]
    fn every_problem_points_at_its_value() {
        let errors = parse(
            r#"
attribute_allow_list = [""]
redact = ["email", "phone", "email"]
[[rules]]
name = "bad"
pattern = "(unclosed"
[[rules]]
name = "email"
pattern = "x"
[[rules]]
name = "empty"
pattern = "a?"
"#,
        )
        .unwrap_err();
        let messages: Vec<(&str, &str)> = errors.iter().map(|(at, m)| (at.as_str(), m.as_str())).collect();
        assert_eq!(messages.len(), 6, "{messages:#?}");
        assert_eq!(
            messages[0],
            (
                "\"phone\"",
                "unknown built-in redaction rule \"phone\", expected one of email, bearer_token, ipv4, credit_card (write your own under [[privacy.rules]])"
            )
        );
        assert_eq!(messages[1], ("\"email\"", "privacy.redact lists \"email\" twice"));
        assert_eq!(messages[2].0, "\"(unclosed\"");
        assert_eq!(messages[2].1, "privacy.rules \"bad\": invalid pattern: unclosed group");
        assert_eq!(
            messages[3],
            (
                "\"email\"",
                "privacy.rules name \"email\" is taken (by a built-in rule or another rule)"
            )
        );
        assert_eq!(
            messages[4],
            (
                "\"a?\"",
                "privacy.rules \"empty\": invalid pattern: pattern \"a?\" matches the empty string"
            )
        );
        assert_eq!(messages[5], ("\"\"", "privacy.attribute_allow_list holds an empty key"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse("alow_list = []").unwrap_err();
        assert!(e[0].1.starts_with("unknown field `alow_list`"), "{e:?}");
    }
}
