//! The config file: read once, each section deserialized by the crate that owns it, then validated
//! into domain types. Every problem is reported with `file:line:column`, and all of them at once.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use slis::config::{ConfigError, Secret};
use slis::journey::Journeys;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use tracebudget_alerting::config::{Alerting, Sections};
use tracebudget_engine::config::{ClusterConfig, IngestConfig, JourneyConfig, StorageConfig, build_journeys};
use tracebudget_engine::health::TraceHealthConfig;
use tracebudget_engine::jetstream::JetStreamConfig;
use tracebudget_engine::listen::{Timeout, TlsConfig};

/// `[server]`: the API, `/metrics` and the dashboards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address of the HTTP API and dashboards.
    pub listen: SocketAddr,
    /// Bearer token required by write endpoints (silences, reload). Never logged.
    pub api_token: Option<Secret>,
    /// Also require the token for reads: every `GET /api/v1/…` but the OpenAPI document, and
    /// `/metrics`. Needs `api_token`.
    pub protect_reads: bool,
    /// The URL people reach this instance at, used for links in notifications. Its host is also
    /// one of the names the API answers to, and its origin may send writes.
    pub external_url: Option<String>,
    /// Host names the API answers to besides `localhost`, IP addresses and the host of
    /// `external_url`, e.g. a reverse proxy's name that reaches this server unchanged in `Host`.
    /// Without `protect_reads`, a request naming another host is refused (403): a DNS-rebinding
    /// page cannot read the API. Names only, no scheme or port.
    pub allowed_hosts: Vec<String>,
    /// `[server.tls]`: serve the API and dashboards over TLS (optionally mutual); absent: plain.
    pub tls: Option<TlsConfig>,
    /// A request head (and a new connection's first request) must arrive within this; an idle
    /// keep-alive connection is closed after it.
    pub header_read_timeout: Timeout,
    /// A request body must be complete this long after its head arrived, or it is cut off
    /// (one deadline for the whole body).
    pub body_read_timeout: Timeout,
    /// Open connections at most (TLS handshakes included); one more is closed as soon as it is
    /// accepted, counted in `tracebudget_connections_refused_total`.
    pub max_connections: NonZeroUsize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_token: None,
            protect_reads: false,
            external_url: None,
            allowed_hosts: Vec::new(),
            tls: None,
            header_read_timeout: Timeout::secs(10),
            body_read_timeout: Timeout::secs(30),
            max_connections: NonZeroUsize::new(1024).expect("not zero"),
        }
    }
}

/// The file a config came from, kept for the audit of applied versions. Its `Debug` leaves the
/// text out: it holds the secrets.
#[derive(Clone)]
pub struct Source {
    pub file: String,
    pub text: String,
    /// SHA-256 of `text`, lowercase hex.
    pub sha256: String,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("file", &self.file)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// A whole, validated config.
#[derive(Debug)]
pub struct Config {
    pub source: Source,
    pub server: ServerConfig,
    pub ingest: IngestConfig,
    pub storage: StorageConfig,
    pub cluster: ClusterConfig,
    pub journeys: Journeys,
    pub alerting: Alerting,
    /// `[jetstream]`; absent: no JetStream.
    pub jetstream: Option<JetStreamConfig>,
    /// `[trace_health]`: how the tracing pipeline itself is watched.
    pub trace_health: TraceHealthConfig,
    /// `[privacy]`: the attribute allow-list and the redaction rules.
    pub privacy: crate::app::privacy::Privacy,
}

const SECTIONS: &[&str] = &[
    "server",
    "ingest",
    "storage",
    "cluster",
    "alerting",
    "journeys",
    "slos",
    "policies",
    "receivers",
    "route",
    "inhibit_rules",
    "reports",
    "jetstream",
    "trace_health",
    "privacy",
];

/// Every error found in one config file, rendered with file, line, column and the offending line.
#[derive(Debug)]
pub struct Diagnostics {
    pub file: String,
    pub text: String,
    pub errors: Vec<ConfigError>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(Diagnostics),
}

pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&path.display().to_string(), &text).map_err(LoadError::Invalid)
}

pub fn parse(file: &str, text: &str) -> Result<Config, Diagnostics> {
    let fail = |errors| Diagnostics {
        file: file.to_owned(),
        text: text.to_owned(),
        errors,
    };
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(fail(syntax.iter().map(toml_error).collect()));
    }
    let mut errors = Vec::new();
    // A section that fails to deserialize is reported and replaced by its defaults, so the
    // validation that follows still runs and reports everything else.
    let mut server = ServerConfig::default();
    let mut ingest = IngestConfig::default();
    let mut storage = StorageConfig::default();
    let mut cluster = ClusterConfig::default();
    // Spans of the sections that only make sense on PostgreSQL, checked once the URL is known.
    let (mut storage_span, mut cluster_span) = (None, None);
    let mut journeys = Vec::new();
    let mut jetstream: Option<(JetStreamConfig, std::ops::Range<usize>)> = None;
    let mut trace_health = TraceHealthConfig::default();
    let mut sections = Sections::default();
    let mut privacy = crate::app::privacy::Privacy::default();
    for (key, value) in root.into_inner() {
        let e = &mut errors;
        match key.get_ref().as_ref() {
            "server" => {
                let spans = key_spans(&value);
                server = one(value, e).unwrap_or_default();
                let at = |k: &str| {
                    spans
                        .iter()
                        .find(|(name, _)| name == k)
                        .map_or(key.span(), |(_, s)| s.clone())
                };
                for host in &server.allowed_hosts {
                    if let Err(m) = check_host_name(host) {
                        e.push(ConfigError::at(at("allowed_hosts"), m));
                    }
                }
                if let Some(tls) = &server.tls
                    && let Err(errors) = tls.load("server")
                {
                    e.extend(errors);
                }
                if server.protect_reads && server.api_token.is_none() {
                    e.push(ConfigError::at(
                        key.span(),
                        "server.protect_reads needs server.api_token: nobody could read the API",
                    ));
                }
            }
            "ingest" => {
                ingest = one(value, e).unwrap_or_default();
                if let Some(tls) = &ingest.tls
                    && let Err(errors) = tls.load("ingest")
                {
                    e.extend(errors);
                }
            }
            "storage" => {
                storage_span = Some(key.span());
                storage = one(value, e).unwrap_or_default();
            }
            "cluster" => {
                cluster_span = Some(key.span());
                cluster = one(value, e).unwrap_or_default();
            }
            "jetstream" => jetstream = Some((one(value, e).unwrap_or_default(), key.span())),
            "trace_health" => {
                // Each problem points at its key's value (the section header when it is unset).
                let spans = key_spans(&value);
                trace_health = one(value, e).unwrap_or_default();
                e.extend(trace_health.validate().into_iter().map(|(k, m)| {
                    let span = spans
                        .iter()
                        .find(|(name, _)| name == k)
                        .map_or(key.span(), |(_, s)| s.clone());
                    ConfigError::at(span, m)
                }));
            }
            "privacy" => {
                let written: crate::app::privacy::PrivacyConfig = one(value, e).unwrap_or_default();
                match written.build() {
                    Ok(p) => privacy = p,
                    Err(errors) => e.extend(errors),
                }
            }
            "alerting" => sections.alerting = one(value, e).unwrap_or_default(),
            "route" => sections.route = one(value, e),
            "journeys" => journeys = many::<JourneyConfig>("journeys", value, e),
            "slos" => sections.slos = many("slos", value, e),
            "policies" => sections.policies = many("policies", value, e),
            "receivers" => sections.receivers = many("receivers", value, e),
            "reports" => sections.reports = many("reports", value, e),
            "inhibit_rules" => sections.inhibit_rules = Some(many("inhibit_rules", value, e)),
            other => e.push(ConfigError::at(
                key.span(),
                format!("unknown section `{other}`, expected one of {}", SECTIONS.join(", ")),
            )),
        }
    }
    // Several instances share rows, an evaluator lock and partition locks through PostgreSQL;
    // a SQLite file serves one process, which always leads.
    if storage.url.0.starts_with("sqlite:") {
        if !storage.instance.0.is_empty() {
            errors.push(ConfigError {
                span: storage_span,
                message: format!(
                    "storage.instance {:?} needs PostgreSQL: several instances share one PostgreSQL database, a SQLite file serves one",
                    storage.instance.0
                ),
            });
        }
        if let Some(span) = &cluster_span {
            errors.push(ConfigError::at(
                span.clone(),
                "[cluster] needs storage.url on PostgreSQL: a SQLite file serves one instance",
            ));
        }
    }
    if let Some(span) = cluster_span.clone() {
        let mut seen = std::collections::BTreeSet::new();
        if let Some(p) = cluster.partitions.iter().find(|p| !seen.insert(**p)) {
            errors.push(ConfigError::at(
                span.clone(),
                format!("cluster.partitions lists {p} twice"),
            ));
        }
        if cluster.lock_poll.0.is_zero() {
            errors.push(ConfigError::at(span, "cluster.lock_poll must be longer than 0"));
        }
    }
    if let Some((js, span)) = &jetstream
        && let Err(e) = js.validate(storage.flush_interval.0)
    {
        errors.extend(e.into_iter().map(|e| ConfigError::at(span.clone(), e.message)));
    }
    let journeys = build_journeys(journeys).unwrap_or_else(|e| {
        errors.extend(e);
        Journeys::default()
    });
    let alerting = tracebudget_alerting::config::build(sections, &journeys)
        .map_err(|e| errors.extend(e))
        .ok();
    match alerting {
        Some(alerting) if errors.is_empty() => {
            let source = Source {
                file: file.to_owned(),
                text: text.to_owned(),
                sha256: sha256_hex(text),
            };
            Ok(Config {
                source,
                server,
                ingest,
                storage,
                cluster,
                journeys,
                alerting,
                jetstream: jetstream.map(|(js, _)| js),
                trace_health,
                privacy,
            })
        }
        _ => Err(fail(errors)),
    }
}

/// The span of each key's value in a table (none for another value).
fn key_spans(value: &Spanned<DeValue<'_>>) -> Vec<(String, std::ops::Range<usize>)> {
    match value.get_ref() {
        DeValue::Table(t) => t.iter().map(|(k, v)| (k.get_ref().to_string(), v.span())).collect(),
        _ => Vec::new(),
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn toml_error(e: &toml::de::Error) -> ConfigError {
    ConfigError {
        span: e.span(),
        message: e.message().trim_end().to_owned(),
    }
}

fn one<T: DeserializeOwned>(value: Spanned<DeValue<'_>>, errors: &mut Vec<ConfigError>) -> Option<T> {
    T::deserialize(ValueDeserializer::from(value))
        .map_err(|e| errors.push(toml_error(&e)))
        .ok()
}

/// An array of tables, each item deserialized on its own so one bad item does not hide the others.
fn many<T: DeserializeOwned>(section: &str, value: Spanned<DeValue<'_>>, errors: &mut Vec<ConfigError>) -> Vec<T> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items.into_iter().filter_map(|item| one(item, errors)).collect(),
        other => {
            errors.push(ConfigError::at(
                span,
                format!(
                    "`{section}` must be an array of tables ([[{section}]]), found a {}",
                    other.type_str()
                ),
            ));
            Vec::new()
        }
    }
}

impl Diagnostics {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        (line, col)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut errors: Vec<&ConfigError> = self.errors.iter().collect();
        errors.sort_by_key(|e| e.span.as_ref().map_or(usize::MAX, |s| s.start));
        // The line of an error is quoted with the config view's redactions: this output ends up
        // in CI logs, and a secret may sit on the line of an error.
        let shown = crate::app::redact::Redacted::new(&self.text);
        for e in &errors {
            writeln!(f, "error: {}", e.message)?;
            let Some(span) = &e.span else {
                writeln!(f, "  --> {}", self.file)?;
                continue;
            };
            let (line, col) = self.line_col(span.start);
            writeln!(f, "  --> {}:{line}:{col}", self.file)?;
            let start = floor_char_boundary(&shown.text, shown.offset(span.start).min(shown.text.len()));
            let end = floor_char_boundary(&shown.text, shown.offset(span.end).min(shown.text.len())).max(start);
            let line_start = shown.text[..start].rfind('\n').map_or(0, |i| i + 1);
            let source_line = shown.text[line_start..].lines().next().unwrap_or("");
            let col = shown.text[line_start..start].chars().count() + 1;
            let gutter = " ".repeat(line.to_string().len());
            let first_line_len = source_line.chars().count().saturating_sub(col - 1).max(1);
            let width = shown.text[start..end].chars().count().clamp(1, first_line_len);
            writeln!(f, "{gutter} |")?;
            writeln!(f, "{line} | {source_line}")?;
            writeln!(f, "{gutter} | {}{}", " ".repeat(col - 1), "^".repeat(width))?;
        }
        let n = errors.len();
        write!(f, "{}: {n} error{}", self.file, if n == 1 { "" } else { "s" })
    }
}

/// Whether a config's `allowed_hosts` entry is a host name: what `Host` carries, without port.
pub fn check_host_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "server.allowed_hosts: {name:?} is not a host name: give the name alone, without scheme, port or path, e.g. \"slo.example.com\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_entries_are_names() {
        for ok in ["slo.example.com", "tracebudget", "a-b.c1"] {
            assert_eq!(check_host_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "https://slo.example.com",
            "slo.example.com:443",
            "*.example.com",
            "a..b",
            "a b",
            "slo/x",
        ] {
            assert_eq!(
                check_host_name(bad),
                Err(format!(
                    "server.allowed_hosts: {bad:?} is not a host name: give the name alone, without scheme, port or path, e.g. \"slo.example.com\""
                )),
                "{bad}"
            );
        }
    }

    /// A scratch folder with a CA-signed certificate (`cert.pem`, `key.pem`), another key
    /// (`other.key`) and a file that is not PEM (`junk.txt`).
    fn pem_files(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tracebudget-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(
            dir.join("other.key"),
            rcgen::KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        std::fs::write(dir.join("junk.txt"), "not a certificate\n").unwrap();
        dir
    }

    fn errors(text: &str) -> String {
        match parse("t.toml", text) {
            Ok(_) => "valid".to_owned(),
            Err(d) => d.to_string(),
        }
    }

    /// Issue 18: `check` quoted the line of an error as written, secrets and all. It quotes the
    /// config view's redacted line, the caret under the same key.
    #[test]
    fn an_error_quotes_its_line_redacted() {
        let text = "# token xoxb-SECRET2\n[[receivers]]\nname = \"slack\"\nwebhook = { url = \"https://hooks.slack.com/services/T000/B000/SECRETXYZ\", bearer_token = \"SECRETB\", formt = \"slack\" } # SECRETC\n";
        assert_eq!(
            errors(text),
            r#"error: unknown field `formt`, expected one of `url`, `format`, `headers`, `bearer_token`, `routing_key`, `timeout`
  --> t.toml:4:101
  |
4 | webhook = { url = "https://hooks.slack.com/<redacted>", bearer_token = "<redacted>", formt = "slack" } # <redacted>
  |                                                                                      ^^^^^
t.toml: 1 error"#
        );
        // Not TOML at all: what toml recovers is redacted all the same.
        let text = "[server]\napi_token = \"SECRETAPI\" = oops\n";
        let got = errors(text);
        assert!(!got.contains("SECRETAPI"), "{got}");
        assert!(got.contains("2 | api_token = \"<redacted>\" = oops\n"), "{got}");
    }

    /// Each case: the config, then every `error: …` and `--> t.toml:line:col` line expected.
    #[test]
    fn tls_timeouts_and_tokens_are_checked_with_the_key_they_come_from() {
        let dir = pem_files("tls");
        let d = dir.display();
        let missing = dir.join("missing.pem");
        let missing = missing.display();
        let cases: Vec<(String, Vec<String>)> = vec![
            (
                format!("[ingest.tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\nbogus = 1\n"),
                vec![
                    "error: unknown field `bogus`, expected one of `cert`, `key`, `client_ca`, `handshake_timeout`".into(),
                    "--> t.toml:4:1".into(),
                ],
            ),
            (
                format!("[ingest.tls]\ncert = \"{missing}\"\nkey = \"{d}/junk.txt\"\nclient_ca = \"{d}/junk.txt\"\n"),
                vec![
                    format!("error: ingest.tls.cert \"{missing}\": cannot read the file: No such file or directory (os error 2)"),
                    "--> t.toml:2:8".into(),
                    format!("error: ingest.tls.key \"{d}/junk.txt\": holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)"),
                    "--> t.toml:3:7".into(),
                    format!("error: ingest.tls.client_ca \"{d}/junk.txt\": holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
                    "--> t.toml:4:13".into(),
                ],
            ),
            (
                format!("[server]\nlisten = \"127.0.0.1:0\"\n[server.tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/other.key\"\n"),
                vec![
                    format!("error: server.tls.key \"{d}/other.key\": does not go with the certificate in \"{d}/cert.pem\""),
                    "--> t.toml:5:7".into(),
                ],
            ),
            (
                format!("[server.tls]\ncert = \"{d}/cert.pem\"\n"),
                vec!["error: missing field `key`".into(), "--> t.toml:1:1".into()],
            ),
            (
                "[ingest]\nheader_read_timeout = \"0s\"\n".into(),
                vec!["error: a timeout must be longer than 0".into(), "--> t.toml:2:23".into()],
            ),
            (
                "[ingest]\nauth_token = []\n".into(),
                vec![
                    "error: auth_token is an empty list: remove it to need no token".into(),
                    "--> t.toml:2:14".into(),
                ],
            ),
            (
                "[ingest]\nauth_token = [\"ok\", \"\"]\n".into(),
                vec!["error: auth_token holds an empty token".into(), "--> t.toml:2:14".into()],
            ),
            (
                "[ingest]\nauth_token = \"two words\"\n".into(),
                vec![
                    "error: auth_token holds a token with a space or a character that is not visible ASCII: an HTTP header cannot carry it".into(),
                    "--> t.toml:2:14".into(),
                ],
            ),
            (
                "[ingest]\nauth_token = 7\n".into(),
                vec!["error: a token (a string) or a list of tokens".into(), "--> t.toml:2:14".into()],
            ),
            (
                format!(
                    "[server]\nheader_read_timeout = \"2s\"\nbody_read_timeout = \"5s\"\n[server.tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\nclient_ca = \"{d}/cert.pem\"\nhandshake_timeout = \"3s\"\n[ingest]\nauth_token = \"t1\"\n[ingest.tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n"
                ),
                vec!["valid".into()],
            ),
        ];
        for (text, expected) in cases {
            let got = errors(&text);
            let lines: Vec<&str> = got
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("error:") || l.starts_with("-->") || *l == "valid")
                .map(|l| l.split(": data did not match").next().unwrap_or(l))
                .collect();
            let starts: Vec<bool> = expected
                .iter()
                .zip(&lines)
                .map(|(want, got)| got.starts_with(want.as_str()))
                .collect();
            assert!(
                lines.len() == expected.len() && starts.iter().all(|ok| *ok),
                "config:\n{text}\nexpected lines starting with:\n{expected:#?}\ngot:\n{got}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 18: each `allowed_hosts` entry is a host name alone, a bad one reported at the key.
    #[test]
    fn allowed_hosts_are_names() {
        let text = "[server]\nallowed_hosts = [\"slo.example.com\", \"https://slo.example.com:443\"]\n";
        let got = errors(text);
        let lines: Vec<&str> = got
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("error:") || l.starts_with("-->"))
            .collect();
        assert_eq!(
            lines,
            [
                "error: server.allowed_hosts: \"https://slo.example.com:443\" is not a host name: give the name alone, without scheme, port or path, e.g. \"slo.example.com\"",
                "--> t.toml:2:17",
            ],
            "{got}"
        );
        let config = parse("t.toml", "[server]\nallowed_hosts = [\"slo.example.com\"]\n").unwrap();
        assert_eq!(config.server.allowed_hosts, ["slo.example.com"]);
        assert!(parse("t.toml", "").unwrap().server.allowed_hosts.is_empty());
    }

    /// Issue 9: `Debug` of a whole config shows none of its secrets.
    #[test]
    fn debug_of_a_config_shows_no_secret() {
        let text = r#"
[server]
api_token = "tok-API-SECRET"
[ingest]
auth_token = ["tok-INGEST-SECRET"]
[storage]
url = "postgres://u:PG-SECRET@localhost/db"

[[receivers]]
name = "hook"
webhook = { url = "https://hooks.example/services/SECRET-path?k=SECRET-query", bearer_token = "tok-WEBHOOK-SECRET", headers = { "X-Api-Key" = "SECRET-header" } }
[[receivers]]
name = "pd"
webhook = { url = "https://events.example/v2", format = "pagerduty", routing_key = "SECRET-routing" }
[[receivers]]
name = "mail"
email = { to = ["a@example.com"], from = "b@example.com", smarthost = "smtp.example:587", username = "u", password = "SECRET-password" }
[route]
receiver = "hook"
"#;
        let config = parse("t.toml", text).unwrap_or_else(|d| panic!("{d}"));
        let debug = format!("{config:?}");
        assert!(debug.contains("<redacted>"), "{debug}");
        let leaks: Vec<&str> = debug
            .match_indices("SECRET")
            .map(|(i, _)| &debug[i.saturating_sub(40)..i + 6])
            .collect();
        // The storage URL is the one place a password may still sit: it is the user's own
        // database URL, shown in the log as `db.url` redacted by sqlx's own display.
        assert!(leaks.iter().all(|l| l.contains("PG-SECRET")), "{leaks:#?}");
    }
}
