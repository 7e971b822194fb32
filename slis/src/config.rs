//! Building blocks every crate's config section shares: typed values that check themselves while
//! they are deserialized (so the TOML parser reports the line and column of a bad value), and the
//! error type of the validation that follows parsing.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::{format_duration, parse_duration};

/// One problem found in a config file. `span` is a byte range into the file's text when known;
/// the binary turns it into `file:line:column`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl ConfigError {
    pub fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        ConfigError {
            span: Some(span),
            message: message.into(),
        }
    }

    pub fn unplaced(message: impl Into<String>) -> Self {
        ConfigError {
            span: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A duration written as in `"300ms"`, `"5m"`, `"28d"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct HumanDuration(pub Duration);

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_duration(&s).map(HumanDuration).map_err(|e| e.to_string())
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_duration(self.0).fmt(f)
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

/// An SLO objective, strictly between 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Deserialize)]
#[serde(try_from = "f64")]
pub struct Objective(pub f64);

impl TryFrom<f64> for Objective {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v > 0.0 && v < 1.0 {
            Ok(Objective(v))
        } else {
            Err(format!(
                "objective {v} is outside (0, 1): write a ratio, e.g. 0.999 for 99.9%"
            ))
        }
    }
}

/// A byte size written as `"8MiB"`, `"512KiB"`, `"1GB"` or a plain integer of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "ByteSizeRepr")]
pub struct ByteSize(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum ByteSizeRepr {
    Bytes(u64),
    Text(String),
}

impl TryFrom<ByteSizeRepr> for ByteSize {
    type Error = String;
    fn try_from(r: ByteSizeRepr) -> Result<Self, String> {
        match r {
            ByteSizeRepr::Bytes(b) => Ok(ByteSize(b)),
            ByteSizeRepr::Text(s) => parse_byte_size(&s).map(ByteSize),
        }
    }
}

const BYTE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

fn parse_byte_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let unit = s[digits..].trim();
    let number: u64 = s[..digits]
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected e.g. \"8MiB\""))?;
    let scale = BYTE_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, scale)| *scale)
        .ok_or_else(|| {
            format!("invalid size {text:?}: unknown unit {unit:?}, expected B, KB, MB, GB, KiB, MiB or GiB")
        })?;
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_prints_redacted_and_matches_only_itself() {
        let s = Secret::new("tok-SECRET");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        for (presented, ok) in [
            ("tok-SECRET", true),
            ("tok-SECRE", false),
            ("tok-SECRET!", false),
            ("tok-secret", false),
            ("", false),
        ] {
            assert_eq!(s.matches(presented.as_bytes()), ok, "{presented:?}");
        }
    }

    #[test]
    fn objective_bounds() {
        assert!(Objective::try_from(0.999).is_ok());
        for bad in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
            assert!(Objective::try_from(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Objective::try_from(99.9).unwrap_err(),
            "objective 99.9 is outside (0, 1): write a ratio, e.g. 0.999 for 99.9%"
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_byte_size("512 KB"), Ok(512_000));
        assert_eq!(parse_byte_size("10B"), Ok(10));
        assert_eq!(
            parse_byte_size("8 mb").unwrap_err(),
            "invalid size \"8 mb\": unknown unit \"mb\", expected B, KB, MB, GB, KiB, MiB or GiB"
        );
    }
}

/// A secret from the config (a bearer token, a password): `Debug` and `Display` print
/// `<redacted>`, so logging a config never shows it, and [`Secret::matches`] compares in
/// constant time (for equal lengths), so a client cannot learn it byte by byte from timing.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// What replaces a secret wherever one would be shown.
pub const REDACTED: &str = "<redacted>";

/// A URL as it may be shown (the config view, `check`, logs, error messages): its scheme, host
/// and port. A database URL (`sqlite:`, `postgres:`, `postgresql:`) also keeps its user name and
/// path (a database name or file). Everything else reads `<redacted>`: a password and any user
/// name of another URL (NATS reads `nats://TOKEN@host` as a token), the path of a non-database
/// URL (Slack and PagerDuty put their keys there), any query (`?password=` is a PostgreSQL
/// password) and fragment. A string that is not `scheme://…` is returned as it is.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !is_scheme {
        return url.to_owned();
    }
    let database = ["sqlite", "postgres", "postgresql"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s));
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let mut out = format!("{scheme}://");
    let host = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) if database => out.push_str(&format!("{user}:{REDACTED}@")),
                None if database => out.push_str(&format!("{userinfo}@")),
                _ => out.push_str(&format!("{REDACTED}@")),
            }
            host
        }
        None => authority,
    };
    out.push_str(host);
    let (path, after) = if database {
        tail.split_at(tail.find(['?', '#']).unwrap_or(tail.len()))
    } else if tail == "/" {
        (tail, "")
    } else {
        ("", tail)
    };
    out.push_str(path);
    if let Some(first) = after.chars().next() {
        out.push(first);
        out.push_str(REDACTED);
    }
    out
}

#[cfg(test)]
mod redact_url_tests {
    use super::redact_url;

    #[test]
    fn only_scheme_host_and_port_show_and_database_paths() {
        for (url, shown) in [
            (
                "https://hooks.slack.com/services/T000/B000/SECRET",
                "https://hooks.slack.com/<redacted>",
            ),
            (
                "https://events.pagerduty.com/v2/enqueue",
                "https://events.pagerduty.com/<redacted>",
            ),
            ("http://127.0.0.1:9093", "http://127.0.0.1:9093"),
            ("http://127.0.0.1:9093/", "http://127.0.0.1:9093/"),
            ("http://h:1?token=SECRET", "http://h:1?<redacted>"),
            ("http://h:1/x#SECRET", "http://h:1/<redacted>"),
            (
                "https://user:SECRET@h.example/x",
                "https://<redacted>@h.example/<redacted>",
            ),
            ("nats://SECRET@nats:4222", "nats://<redacted>@nats:4222"),
            ("nats://u:SECRET@nats:4222", "nats://<redacted>@nats:4222"),
            (
                "postgres://tb:SECRET@db:5432/slo",
                "postgres://tb:<redacted>@db:5432/slo",
            ),
            (
                "postgres://tb@db/slo?password=SECRET",
                "postgres://tb@db/slo?<redacted>",
            ),
            ("postgresql://db/slo", "postgresql://db/slo"),
            ("sqlite://tracebudget.db", "sqlite://tracebudget.db"),
            ("sqlite:///var/lib/tb.db?mode=rwc", "sqlite:///var/lib/tb.db?<redacted>"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("not a url", "not a url"),
            ("http.url =~ https://x/SECRET", "http.url =~ https://x/SECRET"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
